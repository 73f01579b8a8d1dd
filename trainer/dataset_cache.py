"""Prepared (tokenized and packed) training rows, kept on disk so a second job on the same data skips that work.

An entry is ``<cache_dir>/<key>/`` where the key is the SHA-256 of everything the rows depend on: the
bytes of the data files, the tokenizer (vocabulary, merges, chat template, special tokens), the settings
that shape the rows, and the versions of the code that builds them. Entries are written to a temporary
directory and renamed into place, so a reader never sees half an entry and two jobs racing to fill the
same entry both end up with a complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import trl
from datasets import Dataset, load_from_disk
from transformers import PreTrainedTokenizerBase

# Bump when the rows' format or the way they are built changes, so old entries are not reused.
CACHE_FORMAT = 1
_META = "meta.json"


@dataclass(frozen=True)
class PreparedRows:
    train: Dataset
    eval: Dataset | None
    train_tokens: int  # tokens in the training rows, after truncation
    warnings: list[str] = field(default_factory=list)  # replayed as events on a cache hit


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """Changes whenever the token ids of some text, or the rendering of a chat, could change."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocabulary = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    parts = [vocabulary, str(tokenizer.chat_template), str(tokenizer.eos_token), str(tokenizer.pad_token)]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def cache_key(files: Iterable[Path | None], tokenizer: PreTrainedTokenizerBase, settings: dict[str, object]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(b"file\x00")
        if path is not None:
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    versions = {"format": CACHE_FORMAT, "trl": trl.__version__}
    digest.update(json.dumps({**settings, **versions}, sort_keys=True, default=str).encode())
    digest.update(tokenizer_fingerprint(tokenizer).encode())
    return digest.hexdigest()


def load_prepared(entry: Path) -> PreparedRows | None:
    """The cached rows, or None when there is no complete entry."""
    if not (entry / _META).is_file():
        return None
    meta = json.loads((entry / _META).read_text(encoding="utf-8"))
    train = load_from_disk(str(entry / "train"))
    evaluation = load_from_disk(str(entry / "eval")) if meta["has_eval"] else None
    assert isinstance(train, Dataset) and (evaluation is None or isinstance(evaluation, Dataset))
    return PreparedRows(train, evaluation, int(meta["train_tokens"]), list(meta["warnings"]))


def store_prepared(entry: Path, rows: PreparedRows) -> None:
    """Write ``rows`` as ``entry`` unless another job got there first."""
    if (entry / _META).is_file():
        return
    staging = entry.with_name(f"{entry.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        rows.train.save_to_disk(str(staging / "train"))
        if rows.eval is not None:
            rows.eval.save_to_disk(str(staging / "eval"))
        meta = {"train_tokens": rows.train_tokens, "warnings": rows.warnings, "has_eval": rows.eval is not None}
        (staging / _META).write_text(json.dumps(meta), encoding="utf-8")  # last: marks the entry complete
        os.rename(staging, entry)
    except OSError:
        # Another job renamed its entry into place first (or the disk is full): the run goes on without caching.
        shutil.rmtree(staging, ignore_errors=True)
