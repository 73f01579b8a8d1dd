"""Where a run's checkpoints live, and which one to resume from (pure: no torch)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHECKPOINTS_DIRNAME = "checkpoints"
# The HF Trainer's own layout: checkpoint-<global step>/, complete once trainer_state.json is written (it is last).
_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
_COMPLETE_MARKER = "trainer_state.json"


def checkpoints_dir(output_dir: Path) -> Path:
    return output_dir / CHECKPOINTS_DIRNAME


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``output_dir/checkpoints``, if any."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return None
    complete = [
        (int(match.group(1)), path)
        for path in root.iterdir()
        if (match := _CHECKPOINT_NAME.match(path.name)) and (path / _COMPLETE_MARKER).is_file()
    ]
    return max(complete)[1] if complete else None


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Every complete checkpoint under ``output_dir/checkpoints``, oldest first."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    found = [
        (int(match.group(1)), path)
        for path in root.iterdir()
        if (match := _CHECKPOINT_NAME.match(path.name)) and (path / _COMPLETE_MARKER).is_file()
    ]
    return [path for _, path in sorted(found)]


def directory_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


@dataclass(frozen=True)
class SavedCheckpoint:
    """One checkpoint just written, and which ones retention has left on disk (``kept``, this one included)."""

    step: int
    path: Path
    bytes: int
    metrics: dict[str, float]
    kept: list[Path]


CheckpointCallback = Callable[[SavedCheckpoint], None]
