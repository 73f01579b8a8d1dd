"""Which base models a job may name: a hub id, or a model directory under the operator's model roots."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from core.errors import InvalidRequest
from core.settings import Settings

# "name" or "org/name", as the Hugging Face hub spells repository ids.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or ref.count("/") > 1


def _model_directory(settings: Settings, ref: str) -> str:
    roots = settings.resolved_model_roots
    try:
        path = Path(ref).resolve()  # symlinks resolved, so a link cannot lead out of a root
        inside = any(path.is_relative_to(root) for root in roots)
        is_model = inside and (path / "config.json").is_file()
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"base_model {ref!r} is not a usable path", param="base_model") from exc
    if not Path(ref).is_absolute() or not inside:
        raise InvalidRequest(
            f"base_model {ref!r} is not under a model root; local models must be absolute paths inside "
            f"{', '.join(map(str, roots))} (operators: TUNEQ_MODEL_ROOTS)",
            param="base_model",
        )
    if not is_model:
        raise InvalidRequest(f"base_model {ref!r} is not a model directory (no config.json)", param="base_model")
    return str(path)


def check_base_model(settings: Settings, ref: str) -> str:
    """Return the reference to store: a model directory's resolved path, or the hub id as given."""
    if _looks_like_path(ref):
        return _model_directory(settings, ref)
    if not HUB_ID.match(ref):
        raise InvalidRequest(
            f"base_model {ref!r} is neither a hub id like 'Qwen/Qwen3-8B' nor a model directory", param="base_model"
        )
    allowed = settings.base_model_allowlist
    if allowed is not None and not any(fnmatch.fnmatchcase(ref, pattern) for pattern in allowed):
        raise InvalidRequest(
            f"base_model {ref!r} is not among the models this service allows ({', '.join(allowed)})",
            param="base_model",
        )
    return ref
