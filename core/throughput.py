"""Training throughput by device and model size: what a cost estimate divides the trained tokens by.

Tokens/s are real (non-padding) training tokens per second of tuneq's trainer (QLoRA NF4, LoRA r=16,
all-linear, packed rows), keyed by device name (matched by substring, longest key first, as prices are)
and by the model's size class. Every entry says where its number comes from:

- ``measured``: this project measured it (BENCHMARKS.md gives the command and the date);
- ``reported``: measured by someone else, quoted in BENCHMARKS.md, not reproduced here;
- ``placeholder``: a guess, scaled from the entries above; no session of this project has had a GPU to
  measure it. Replace these with real runs of ``bench/train_throughput.py --device cuda``.

A job's start-up (imports, model load, tokenizing, saving) is added as a fixed number of seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SizeClass(StrEnum):
    TINY = "tiny"  # < 100M parameters: test models
    SMALL = "small"  # < 2B: Qwen3-0.6B, Qwen3-1.7B, Llama-3.2-1B
    MEDIUM = "medium"  # < 10B: Qwen3-4B/8B, Llama-3.1-8B, Mistral-7B
    LARGE = "large"  # < 40B: Qwen3-14B/32B
    XLARGE = "xlarge"  # >= 40B: Llama-3.1-70B


SIZE_CLASS_UPPER_BOUNDS: list[tuple[SizeClass, float]] = [
    (SizeClass.TINY, 100e6),
    (SizeClass.SMALL, 2e9),
    (SizeClass.MEDIUM, 10e9),
    (SizeClass.LARGE, 40e9),
]


class Source(StrEnum):
    MEASURED = "measured"
    REPORTED = "reported"
    PLACEHOLDER = "placeholder"


@dataclass(frozen=True)
class Throughput:
    tokens_per_second: float
    source: Source
    note: str


_P = Source.PLACEHOLDER

# tokens/s of tuneq's trainer; see the module docstring for what each source means.
CPU_THROUGHPUT: dict[SizeClass, Throughput] = {
    SizeClass.TINY: Throughput(
        714, Source.MEASURED, "BENCHMARKS.md, issue 12: tiny Qwen3 (2 layers, hidden 64), 2 shared cores, 2026-11-24"
    ),
    SizeClass.SMALL: Throughput(20, _P, "guess: CPU training of a 0.6B model"),
    SizeClass.MEDIUM: Throughput(2, _P, "guess: CPU training of an 8B model (impractical)"),
    SizeClass.LARGE: Throughput(0.5, _P, "guess"),
    SizeClass.XLARGE: Throughput(0.1, _P, "guess"),
}

GPU_THROUGHPUT: dict[str, dict[SizeClass, Throughput]] = {
    "H100": {
        SizeClass.TINY: Throughput(60_000, _P, "guess: start-up and kernel launches dominate"),
        SizeClass.SMALL: Throughput(12_000, _P, "guess: ~3.7x the 8B figure"),
        SizeClass.MEDIUM: Throughput(
            3_241, Source.REPORTED, "BENCHMARKS.md, issue 12: the issue's H100 run, Qwen3-8B shape, 4 x 2048 tokens"
        ),
        SizeClass.LARGE: Throughput(1_300, _P, "guess: ~0.4x the 8B figure"),
        SizeClass.XLARGE: Throughput(400, _P, "guess: ~0.12x the 8B figure"),
    },
}

# Other GPUs as a share of the H100's rate (placeholders: roughly their bf16 tensor throughput ratios).
RELATIVE_TO_H100: dict[str, float] = {
    "H200": 1.15,
    "A100": 0.45,
    "L40S": 0.35,
    "RTX 4090": 0.30,
    "A10G": 0.15,
    "L4": 0.12,
    "T4": 0.05,
}
UNKNOWN_GPU_RELATIVE_TO_H100 = 0.30  # a GPU in neither table: assume a mid-range card

# Seconds a job spends outside the training loop. On the CPU the job process's imports take 4.6-4.7 s
# (measured, BENCHMARKS.md issue 11); model load, tokenizing and saving the tiny model add a few seconds
# (not broken down). On a GPU, loading and quantizing a multi-GB model is a guess.
STARTUP_SECONDS = {"cpu": 10.0, "cuda": 90.0}


def size_class(parameters: int) -> SizeClass:
    for cls, bound in SIZE_CLASS_UPPER_BOUNDS:
        if parameters < bound:
            return cls
    return SizeClass.XLARGE


def _matching(table: dict[str, float] | dict[str, dict[SizeClass, Throughput]], device_name: str) -> str | None:
    # Longest key first, so "L40S" beats "L4" (as core.cost matches prices).
    return next((k for k in sorted(table, key=len, reverse=True) if k.lower() in device_name.lower()), None)


def throughput(device: str, device_name: str, cls: SizeClass) -> Throughput:
    """The table's tokens/s for this device and model size."""
    if device != "cuda":
        return CPU_THROUGHPUT[cls]
    own = _matching(GPU_THROUGHPUT, device_name)
    if own is not None:
        return GPU_THROUGHPUT[own][cls]
    base = GPU_THROUGHPUT["H100"][cls]
    relative = _matching(RELATIVE_TO_H100, device_name)
    factor = RELATIVE_TO_H100[relative] if relative else UNKNOWN_GPU_RELATIVE_TO_H100
    name = relative or f"unknown GPU {device_name!r}"
    return Throughput(round(base.tokens_per_second * factor, 1), _P, f"guess: {name} as {factor} x H100")
