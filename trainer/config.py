"""What a fine-tune is asked to do: hyperparameters, and the run spec around them.

Plain dataclasses with pydantic constraints in their annotations, so the API
validates a request against exactly these fields and ranges (via pydantic's
TypeAdapter) while the trainer uses them as ordinary dataclasses. Importing
this module must not import torch.

``n_epochs``, ``learning_rate``, ``batch_size`` and ``gradient_accumulation_steps``
accept ``"auto"``, as hosted fine-tuning services do; the trainer resolves them
from the dataset size and method (see ``trainer.auto_hyperparameters``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, StringConstraints

from trainer.attention import AttentionKernel
from trainer.kernels import KernelOptions

Auto = Literal["auto"]
ModuleName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.*-]+$")]
AUTO: Auto = "auto"


class Quantization(StrEnum):
    NF4 = "nf4"  # QLoRA: 4-bit NormalFloat base weights, double quantization
    NONE = "none"  # 16-bit (or fp32 on CPU) base weights, plain LoRA


@dataclass
class Hyperparameters:
    """Training knobs; each has a default that works for small chat datasets."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    n_epochs: Annotated[
        Annotated[int, Field(ge=1, le=100)] | Auto, Field(description="passes over the training data, or auto")
    ] = AUTO
    learning_rate: Annotated[
        Annotated[float, Field(gt=0, le=1)] | Auto, Field(description="peak learning rate (cosine schedule), or auto")
    ] = AUTO
    batch_size: Annotated[
        Annotated[int, Field(ge=1, le=1024)] | Auto,
        Field(description="packed sequences per forward pass (micro-batch), or auto"),
    ] = AUTO
    gradient_accumulation_steps: Annotated[
        Annotated[int, Field(ge=1, le=1024)] | Auto,
        Field(description="micro-batches per optimizer step, or auto"),
    ] = AUTO
    lora_r: Annotated[int, Field(ge=1, le=1024, description="LoRA rank")] = 16
    lora_alpha: Annotated[int, Field(ge=1, le=4096, description="LoRA scaling numerator")] = 32
    lora_dropout: Annotated[float, Field(ge=0, lt=1, description="dropout on the LoRA path")] = 0.05
    target_modules: Annotated[
        Literal["all-linear"] | Annotated[list[ModuleName], Field(min_length=1, max_length=64)],
        Field(description="'all-linear', or the names of the layers that get adapters, e.g. ['q_proj', 'v_proj']"),
    ] = "all-linear"
    max_seq_length: Annotated[int, Field(ge=16, le=131072, description="tokens per packed row")] = 1024
    seed: Annotated[int, Field(ge=0, le=2**31 - 1, description="random seed for init, shuffling, dropout")] = 42
    warmup_ratio: Annotated[float, Field(ge=0, le=0.5, description="share of steps spent warming up")] = 0.03
    weight_decay: Annotated[float, Field(ge=0, le=1, description="AdamW weight decay")] = 0.0
    max_grad_norm: Annotated[float, Field(gt=0, le=100, description="gradient clipping norm")] = 1.0
    train_on_inputs: Annotated[bool, Field(description="also learn prompt/user tokens")] = False
    packing: Annotated[bool, Field(description="padding-free packing of several examples per row")] = True
    quantization: Annotated[Quantization, Field(description="nf4 = QLoRA, none = 16-bit LoRA")] = Quantization.NF4
    validation_split: Annotated[
        float, Field(ge=0, le=0.5, description="share of the training file held out for eval when no validation file")
    ] = 0.0
    eval_every_steps: Annotated[
        int | None, Field(ge=1, description="evaluate every N optimizer steps; None = at each epoch end")
    ] = None
    merge_adapter: Annotated[bool, Field(description="also save the base model with the adapter merged in")] = False


# Saving a LoRA checkpoint (adapter + optimizer state) takes well under a second, so every 50 steps costs
# little while bounding the work lost to a crash or preemption; epoch ends and stops are saved as well.
DEFAULT_CHECKPOINT_EVERY_STEPS = 50


@dataclass
class RunSpec:
    """Everything the trainer needs for one run; paths are local to the worker.

    If ``output_dir/checkpoints`` already holds a checkpoint, the run resumes from the latest one.
    """

    base_model: str
    train_file: Path
    output_dir: Path
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    validation_file: Path | None = None
    trust_remote_code: bool = False
    logging_steps: int = 1
    checkpoint_every_steps: int | None = DEFAULT_CHECKPOINT_EVERY_STEPS  # None = only at epoch ends and on stop
    keep_checkpoints: int = 3  # older checkpoints are deleted
    sample_generations: int = 3  # greedy completions of held-out (else training) prompts after training
    # Where prepared (tokenized, packed) rows are cached by content; the trainer adds one directory per entry.
    tokenized_cache_dir: Path | None = None
    attention: AttentionKernel = AttentionKernel.AUTO  # "auto" picks per device (trainer.attention)
    # Liger kernels, activation checkpointing, torch.compile, dataloader workers: "auto" picks per device
    # (trainer.kernels); validate a caller's choice with TypeAdapter(KernelOptions).
    kernels: KernelOptions = field(default_factory=KernelOptions)
    # What adapter_config.json and the model card name as the base: the model as the user gave it, so the
    # adapter loads elsewhere (PeftModel.from_pretrained), not this worker's local path. None = base_model.
    base_model_name: str | None = None
