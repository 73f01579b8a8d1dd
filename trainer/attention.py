"""Which attention kernel a run uses, and how a packed micro-batch is laid out for it.

Packed examples must not attend to each other, and should not pay for the attention the mask removes:

- ``flash_attention_2`` (CUDA, where the ``flash-attn`` package is installed) runs its varlen kernel over the
  whole micro-batch flattened into one sequence; cost grows with the sum of squared example lengths.
- ``flex_attention`` (PyTorch's, CUDA) does the same with a block-sparse document mask. It compiles its kernel
  per shape; it is offered when asked for but not chosen by "auto" until it has been measured on a GPU.
- ``sdpa`` and ``eager`` need a dense mask, so the micro-batch keeps one packed row per ``max_seq_length``
  tokens; the block-diagonal mask of each row bounds the cost to ``rows x max_seq_length**2`` instead of
  ``(rows x max_seq_length)**2`` for one flattened sequence.

All paths are exact (same loss as unpacked, no cross-document attention): ``tests/trainer/test_packing.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AttentionKernel(StrEnum):
    AUTO = "auto"
    FLASH = "flash_attention_2"
    FLEX = "flex_attention"
    SDPA = "sdpa"
    EAGER = "eager"


class BatchLayout(StrEnum):
    FLAT = "flat"  # the micro-batch as one sequence; varlen kernels skip cross-document pairs
    ROWS = "rows"  # one packed row per max_seq_length; dense kernels attend within a row only


# Kernels that take the whole micro-batch as one sequence and skip what the document mask removes.
VARLEN_KERNELS = frozenset({AttentionKernel.FLASH, AttentionKernel.FLEX})


@dataclass(frozen=True)
class AttentionPlan:
    kernel: AttentionKernel
    layout: BatchLayout
    reason: str

    @property
    def decision(self) -> str:
        return f"attention: {self.kernel.value} with {self.layout.value} batches ({self.reason})"


def plan_for(kernel: AttentionKernel, reason: str) -> AttentionPlan:
    """The layout each concrete kernel needs."""
    layout = BatchLayout.FLAT if kernel in VARLEN_KERNELS else BatchLayout.ROWS
    return AttentionPlan(kernel, layout, reason)


def flash_attention_installed() -> bool:
    from transformers.utils.import_utils import is_flash_attn_2_available

    return bool(is_flash_attn_2_available())


def choose_attention(device: str, requested: AttentionKernel) -> AttentionPlan:
    """The kernel for ``device``: the requested one, else the fastest one that is installed and measured."""
    if requested is not AttentionKernel.AUTO:
        return plan_for(requested, "requested")
    if device == "cuda" and flash_attention_installed():
        return plan_for(AttentionKernel.FLASH, "flash-attn is installed")
    if device == "cuda":
        return plan_for(AttentionKernel.SDPA, "flash-attn is not installed; rows bound attention to max_seq_length")
    return plan_for(AttentionKernel.SDPA, f"{device}: rows bound attention to max_seq_length")
