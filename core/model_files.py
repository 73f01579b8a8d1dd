"""A model's files (config.json, tokenizer_config.json, a chat template, tokenizer.json's digest), read once per
version.

Every submit and estimate reads them. A model directory rarely changes, but it can be replaced in place,
so each read costs one ``stat``: the parse is cached by path, inode, modification time and size.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

_Version = tuple[int, int, int]  # (st_ino, st_mtime_ns, st_size): a rewrite or a replacement changes it


def _version(path: Path) -> _Version | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_size) if stat.S_ISREG(found.st_mode) else None


def read_text(path: Path) -> str | None:
    """The file's text; None if it is not a file. Shared between callers: treat it as read-only."""
    version = _version(path)
    return None if version is None else _text(path, version)


def read_json(path: Path) -> Any:
    """The file's parsed JSON; None if it is not a file. Shared between callers: do not change it."""
    version = _version(path)
    return None if version is None else _json(path, version)


def sha256_of(path: Path) -> str | None:
    """The file's SHA-256 (hex); None if it is not a file."""
    version = _version(path)
    return None if version is None else _sha256(path, version)


@lru_cache(maxsize=32)
def _sha256(path: Path, version: _Version) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@lru_cache(maxsize=64)
def _text(path: Path, version: _Version) -> str:
    return path.read_text(encoding="utf-8")


@lru_cache(maxsize=64)
def _json(path: Path, version: _Version) -> Any:
    return json.loads(_text(path, version))
