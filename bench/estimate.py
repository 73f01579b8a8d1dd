"""Submit-time estimate of a big dataset: per process, its token lengths are parsed and packed once.

Every submit estimates its job (core.estimates): token lengths from the cache entry of the dataset and
tokenizer, then TRL's packing of them, in Python. "Before" clears the two in-process caches before each
call, which is what every submit paid before they existed: the entry's parse and the packing. "Now"
is a repeated submit of the same dataset (a sweep over the learning rate, say). Same run, same process.

    .venv/bin/python bench/estimate.py --examples 1000 100000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from core.db import transaction
from core.estimates import EstimateInput, _data_size, estimate
from core.migrate import upgrade_database
from core.settings import Settings
from core.token_counts import _stored_lengths
from trainer.tiny_model import make_tiny_model

HYPERPARAMETERS = {"n_epochs": 1, "batch_size": 4, "max_seq_length": 512, "packing": True}


def write_dataset(path: Path, examples: int) -> Path:
    """Chat examples of varied length (10 to 400 words of answer)."""
    rng = random.Random(0)
    words = ["tuneq", "adapter", "gradient", "token", "capital", "river", "mountain", "model"]
    with path.open("w", encoding="utf-8") as out:
        for n in range(examples):
            answer = " ".join(rng.choice(words) for _ in range(rng.randint(10, 400)))
            messages = [{"role": "user", "content": f"question {n}"}, {"role": "assistant", "content": answer}]
            out.write(json.dumps({"messages": messages}) + "\n")
    return path


def timed_ms(call: Callable[[], None], repeats: int, before_each: Callable[[], None] | None = None) -> float:
    timings = []
    for _ in range(repeats):
        if before_each is not None:
            before_each()
        began = time.perf_counter()
        call()
        timings.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(timings), 2)


def clear_caches() -> None:
    _stored_lengths.cache_clear()
    _data_size.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tqe"))
    model = make_tiny_model(root / "models" / "tiny")
    settings = Settings(database_url=f"sqlite:///{root / 'tuneq.db'}", data_root=root)
    upgrade_database(settings.resolved_database_url)
    for examples in args.examples:
        dataset = write_dataset(root / f"data-{examples}.jsonl", examples)
        # An uploaded file's SHA-256 is on its record (core.files); the estimate hashes only path datasets.
        sha256 = hashlib.sha256(dataset.read_bytes()).hexdigest()
        job = EstimateInput(str(model), dataset, sha256, HYPERPARAMETERS, has_validation_file=False, gpus=1)
        with transaction(settings.resolved_database_url) as session:

            def once() -> None:
                estimate(session, settings, job)  # noqa: B023 (called within this iteration)

            began = time.perf_counter()
            once()  # counts with the tokenizer and writes the cache entry
            first_ms = round((time.perf_counter() - began) * 1000, 1)
            before = timed_ms(once, args.repeats, before_each=clear_caches)
            once()
            now = timed_ms(once, args.repeats)
        print(
            json.dumps(
                {
                    "examples": examples,
                    "first_estimate_ms": first_ms,
                    "before_ms": before,
                    "now_ms": now,
                    "speedup": round(before / now, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
