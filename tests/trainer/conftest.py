"""Fixtures for the trainer's tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def undo_liger_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Liger (applied on CUDA where liger-kernel is installed) swaps Qwen3's RoPE function and RMSNorm and MLP
    classes for the whole process. A job process trains one model, so the trainer leaves it so; a test
    process goes on to build other models, on the CPU too, so each test gets the originals back."""
    from transformers.models.qwen3 import modeling_qwen3

    for name in ("apply_rotary_pos_emb", "Qwen3RMSNorm", "Qwen3MLP"):
        monkeypatch.setattr(modeling_qwen3, name, getattr(modeling_qwen3, name))
