"""What a fine-tune is asked to do: hyperparameters, and the run spec around them.

Plain dataclasses with pydantic constraints in their annotations, so the API
validates a request against exactly these fields and ranges (via pydantic's
TypeAdapter) while the trainer uses them as ordinary dataclasses. Importing
this module must not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field


class Quantization(StrEnum):
    NF4 = "nf4"  # QLoRA: 4-bit NormalFloat base weights, double quantization
    NONE = "none"  # 16-bit (or fp32 on CPU) base weights, plain LoRA


@dataclass
class Hyperparameters:
    """Training knobs; each has a default that works for small chat datasets."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    n_epochs: Annotated[int, Field(ge=1, le=100, description="passes over the training data")] = 3
    learning_rate: Annotated[float, Field(gt=0, le=1, description="peak learning rate (cosine schedule)")] = 2e-4
    batch_size: Annotated[int, Field(ge=1, le=1024, description="sequences per optimizer step")] = 8
    lora_r: Annotated[int, Field(ge=1, le=1024, description="LoRA rank")] = 16
    lora_alpha: Annotated[int, Field(ge=1, le=4096, description="LoRA scaling numerator")] = 32
    lora_dropout: Annotated[float, Field(ge=0, lt=1, description="dropout on the LoRA path")] = 0.05
    max_seq_length: Annotated[int, Field(ge=16, le=131072, description="tokens per packed row")] = 1024
    seed: Annotated[int, Field(ge=0, le=2**31 - 1, description="random seed for init, shuffling, dropout")] = 42
    warmup_ratio: Annotated[float, Field(ge=0, le=0.5, description="share of steps spent warming up")] = 0.03
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.0
    max_grad_norm: Annotated[float, Field(gt=0, le=100)] = 1.0
    train_on_inputs: Annotated[bool, Field(description="also learn prompt/user tokens")] = False
    packing: Annotated[bool, Field(description="padding-free packing of several examples per row")] = True
    quantization: Annotated[Quantization, Field(description="nf4 = QLoRA, none = 16-bit LoRA")] = Quantization.NF4


@dataclass
class RunSpec:
    """Everything the trainer needs for one run; paths are local to the worker."""

    base_model: str
    train_file: Path
    output_dir: Path
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    validation_file: Path | None = None
    trust_remote_code: bool = False
    logging_steps: int = 1
