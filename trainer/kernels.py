"""Which speed and memory options a run uses beyond the attention kernel (``trainer.attention``), per device.

Each option is "auto" by default and can be set per run (``RunSpec.kernels``); "auto" uses on CUDA what is
installed and known to work with QLoRA, and on a CPU none of the GPU-only options:

- Liger layer kernels (``liger-kernel``, the ``gpu`` extra): Triton RMSNorm, SwiGLU and RoPE in place of the
  model's own. Measured before this plan existed (issue 12, H100, Qwen3-8B shape, QLoRA, 4 x 2048): 3,343 vs
  3,241 tokens/s and 16.3 vs 16.7 GB. "auto" turns them on for CUDA where liger-kernel supports the model type.
  Triton kernels need a GPU: on a CPU they are never applied, even when asked for (the run says so).
- The loss: always TRL's fused, chunked LM head (``SFTTrainer`` since TRL 1.16), which projects only the
  labelled positions, in tiles of 4,096 tokens x 32,768 vocabulary entries with fp32 accumulation, and never
  materialises the ``tokens x vocabulary`` logits. Liger's fused linear cross-entropy does the same job; TRL
  refuses it (it would replace the forward that TRL patches), so it is not an option here.
- Activation checkpointing: every decoder layer on CUDA (without it Qwen3-8B at 4 x 2048 ran out of 80 GB),
  none on a CPU. Every n-th layer gives memory back to speed; offloading keeps the checkpointed layer inputs
  in pinned host memory. Both are unmeasured on a GPU, so "auto" chooses neither.
- ``torch.compile``: off unless asked for; unmeasured with bitsandbytes' 4-bit layers, and packed batches
  change shape every step.
- Dataloader workers: collating a 4 x 2048 packed micro-batch takes 5-12 ms of CPU (measured on this
  project's CPU machine), which sits between two GPU steps of 0.1-3 s; on CUDA two worker processes prepare
  the next batches while the GPU computes. A CPU run keeps its cores for the training itself.

Pure (no torch): the API and ``trainer.config`` import it. ``bench/train_throughput.py --variants`` measures
each option against this plan's choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

if TYPE_CHECKING:
    from transformers import PreTrainedModel

Auto = Literal["auto"]


class Switch(StrEnum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


@dataclass
class KernelOptions:
    """What a run asks for; "auto" leaves the choice to ``choose_kernels``. Validated with pydantic's TypeAdapter."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    liger: Annotated[Switch, Field(description="Liger's Triton RMSNorm, SwiGLU and RoPE kernels (CUDA only)")] = (
        Switch.AUTO
    )
    activation_checkpointing: Annotated[
        Annotated[int, Field(ge=1, le=1024)] | Literal["auto", "off"],
        Field(description="checkpoint every n-th decoder layer (1 = every layer), 'off', or auto"),
    ] = "auto"
    checkpoint_offload: Annotated[
        Switch, Field(description="keep the checkpointed layer inputs in pinned host memory instead of the GPU")
    ] = Switch.AUTO
    compile: Annotated[Switch, Field(description="torch.compile the model")] = Switch.AUTO
    dataloader_workers: Annotated[
        Annotated[int, Field(ge=0, le=32)] | Auto,
        Field(description="processes that collate micro-batches ahead of the training loop (0 = in the loop)"),
    ] = "auto"


# Collating runs in worker processes on CUDA: enough to stay ahead of a GPU step, few enough to be cheap.
CUDA_DATALOADER_WORKERS = 2


@dataclass(frozen=True)
class KernelPlan:
    """What a run uses; ``checkpoint_every`` is 0 without activation checkpointing."""

    liger: bool
    checkpoint_every: int
    checkpoint_offload: bool
    compile: bool
    dataloader_workers: int
    reasons: tuple[str, ...]  # one per option, in the order of the fields

    @property
    def decision(self) -> str:
        return "kernels: " + "; ".join(self.reasons)


def _liger(device: str, requested: Switch, model_type: str, liger_model_types: frozenset[str]) -> tuple[bool, str]:
    if requested is Switch.OFF:
        return False, "Liger layer kernels off (requested)"
    asked = "requested, but " if requested is Switch.ON else ""
    if device != "cuda":
        return False, f"Liger layer kernels off ({asked}their Triton kernels need CUDA; this run is on {device})"
    if not liger_model_types:
        return False, f"Liger layer kernels off ({asked}liger-kernel is not installed)"
    if model_type not in liger_model_types:
        return False, f"Liger layer kernels off ({asked}liger-kernel has none for model type {model_type!r})"
    why = "requested" if requested is Switch.ON else "liger-kernel is installed"
    return True, f"Liger RMSNorm, SwiGLU and RoPE kernels ({why})"


def _checkpointing(device: str, requested: int | str, offload: Switch) -> tuple[int, bool, str]:
    if requested == "off" or (requested == "auto" and device != "cuda"):
        why = "requested" if requested == "off" else f"{device}: activations fit"
        if offload is Switch.ON:
            why += "; offload asked for, but there is nothing to offload"
        return 0, False, f"no activation checkpointing ({why})"
    every = 1 if requested == "auto" else int(requested)
    which = "every layer" if every == 1 else f"every {every} layers"
    why = "requested" if requested != "auto" else "needed for long micro-batches on a GPU"
    if offload is Switch.ON:
        return every, True, f"activation checkpointing {which}, inputs offloaded to host memory ({why})"
    return every, False, f"activation checkpointing {which} ({why})"


def _dataloader_workers(device: str, requested: int | str) -> tuple[int, str]:
    if requested != "auto":
        workers = int(requested)
        return workers, f"{workers} dataloader workers (requested)"
    if device == "cuda":
        return CUDA_DATALOADER_WORKERS, f"{CUDA_DATALOADER_WORKERS} dataloader workers (collating off the GPU's path)"
    return 0, f"batches collated in the training loop ({device}: its cores train)"


def choose_kernels(
    device: str, requested: KernelOptions, model_type: str, liger_model_types: frozenset[str]
) -> KernelPlan:
    """The options for ``device``: each requested one, else what "auto" picks (see the module docstring).

    ``liger_model_types`` is what the installed liger-kernel supports (empty when it is not installed).
    """
    liger, liger_reason = _liger(device, requested.liger, model_type, liger_model_types)
    every, offload, checkpoint_reason = _checkpointing(
        device, requested.activation_checkpointing, requested.checkpoint_offload
    )
    compiled = requested.compile is Switch.ON
    compile_reason = "torch.compile (requested)" if compiled else "no torch.compile"
    if requested.compile is Switch.AUTO:
        compile_reason += " (not measured faster with 4-bit layers and packed batches)"
    workers, workers_reason = _dataloader_workers(device, requested.dataloader_workers)
    loss_reason = "loss from TRL's chunked LM head (no full logits)"
    reasons = (liger_reason, loss_reason, checkpoint_reason, compile_reason, workers_reason)
    return KernelPlan(liger, every, offload, compiled, workers, reasons)


def liger_model_types() -> frozenset[str]:
    """The model types the installed liger-kernel patches; empty when it is absent or cannot load (no Triton)."""
    try:
        from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    except Exception:  # ImportError, or Triton failing to initialise: either way there are no kernels to use
        return frozenset()
    return frozenset(MODEL_TYPE_TO_APPLY_LIGER_FN)


def apply_liger_layer_kernels(model: PreTrainedModel) -> None:
    """Swap the model's RMSNorm, SwiGLU and RoPE for Liger's, in place (before PEFT wraps the model).

    The cross-entropy stays TRL's: Liger's own loss kernels replace the forward that TRL patches. Liger also
    patches the model type's module functions and classes, for the rest of the process; a job process trains
    one model.
    """
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(
        model=model, rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=False
    )
