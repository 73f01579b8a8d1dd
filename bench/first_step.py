"""Where the time goes between a worker's claim and a job's first training step.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/first_step.py                      # tiny model, CPU
    HF_HUB_OFFLINE=1 .venv/bin/python bench/first_step.py --model DIR --dataset FILE

Phases, each read from the trainer's own reports:
- imports: a fresh interpreter importing ``worker.runner`` (torch, transformers, peft, trl), as
  the job process the worker spawns after its claim does;
- tokenize: tokenizer load, reading, templating, tokenizing and packing the dataset, until the
  trainer announces its attention choice;
- model load: loading (and on a GPU quantizing) the base model and sizing the "auto" batch, until
  the trainer reports its "auto" decisions;
- first step: trainer set-up, LoRA wrapping and the first optimizer step, until the first progress
  report.
Two runs on the same data: the second reads the tokenized-data cache. The claim itself and the
decision to spawn are measured by ``bench/service.py`` (dispatch latency).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

IMPORT_PROBE = "import time; t = time.perf_counter(); import worker.runner; print(time.perf_counter() - t)"


@dataclass
class PhaseClock:
    """Timestamps of the trainer's reports during one run, stopped after its first step."""

    started: float = field(default_factory=time.perf_counter)
    attention_at: float | None = None
    auto_at: float | None = None
    first_step_at: float | None = None

    def on_event(self, line: str) -> None:
        now = time.perf_counter()
        if line.startswith("attention") and self.attention_at is None:
            self.attention_at = now
        elif line.startswith("auto") and self.auto_at is None:
            self.auto_at = now

    def on_progress(self, _progress: object) -> None:
        self.first_step_at = self.first_step_at or time.perf_counter()

    def stop_after_first_step(self) -> bool:
        return self.first_step_at is not None

    def phases(self) -> dict[str, float]:
        assert self.attention_at and self.auto_at and self.first_step_at, "the run never reached its first step"
        return {
            "tokenize": self.attention_at - self.started,
            "model load": self.auto_at - self.attention_at,
            "first step": self.first_step_at - self.auto_at,
        }


def import_seconds() -> float:
    out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def run_to_first_step(model: Path, dataset: Path, work: Path, cache: Path) -> dict[str, float]:
    from trainer.config import Hyperparameters, RunSpec
    from trainer.errors import TrainingStopped
    from trainer.train import train

    clock = PhaseClock()
    spec = RunSpec(
        base_model=str(model),
        train_file=dataset,
        output_dir=work,
        hyperparameters=Hyperparameters(n_epochs=1),  # the rest "auto", as a default job
        checkpoint_every_steps=None,
        sample_generations=0,
        tokenized_cache_dir=cache,
    )
    with contextlib.suppress(TrainingStopped):  # stopped on purpose after the first step
        train(spec, on_progress=clock.on_progress, should_stop=clock.stop_after_first_step, on_event=clock.on_event)
    return clock.phases()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model directory (default: a tiny Qwen3 built here)")
    parser.add_argument("--dataset", type=Path, help="JSONL dataset (default: the sample chat dataset)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        from trainer.sample_data import write_sample_dataset
        from trainer.tiny_model import make_tiny_model

        model = args.model or make_tiny_model(root / "tiny-qwen3")
        dataset = args.dataset or write_sample_dataset(root / "capitals.jsonl")
        imports = import_seconds()
        cold = run_to_first_step(model, dataset, root / "cold", root / "cache")
        warm = run_to_first_step(model, dataset, root / "warm", root / "cache")
    print("| phase | cold cache (s) | warm cache (s) |\n| --- | --- | --- |")
    print(f"| job-process imports | {imports:.2f} | {imports:.2f} |")
    for phase in cold:
        print(f"| {phase} | {cold[phase]:.2f} | {warm[phase]:.2f} |")
    print(f"| total | {imports + sum(cold.values()):.2f} | {imports + sum(warm.values()):.2f} |")


if __name__ == "__main__":
    main()
