"""Which base models a job may name: a hub id, or a model directory the workers can read."""

from __future__ import annotations

import re
from pathlib import Path

from core.errors import InvalidRequest

# "name" or "org/name", as the Hugging Face hub spells repository ids.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


def check_base_model(ref: str) -> str:
    """Return the reference to store: an absolute directory path, or the hub id as given."""
    looks_like_path = ref.startswith(("/", ".", "~")) or ref.count("/") > 1
    if looks_like_path:
        path = Path(ref).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise InvalidRequest(f"base_model {ref!r} is not a model directory (no config.json)", param="base_model")
        return str(path)
    if not HUB_ID.match(ref):
        raise InvalidRequest(
            f"base_model {ref!r} is neither a hub id like 'Qwen/Qwen3-8B' nor a model directory", param="base_model"
        )
    return ref
