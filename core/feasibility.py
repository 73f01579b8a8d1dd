"""Refuse, at submit time, jobs no GPU (or host) can train, instead of failing hours later in the queue.

The bound is on tokens per micro-batch: the logits alone take tokens x vocabulary
x 2 bytes, so 262,144 tokens with a 150k-token vocabulary (Qwen3, Llama 3) need
~80 GB before a single weight or activation, more than any single GPU has.
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidRequest, ValueOutOfRange
from core.settings import Settings

MAX_TOKENS_PER_MICRO_BATCH = 262_144


def check_fits_a_gpu(hyperparameters: dict[str, Any]) -> None:
    batch_size = hyperparameters.get("batch_size")
    max_seq_length = int(hyperparameters.get("max_seq_length") or 0)
    if not isinstance(batch_size, int):
        return  # "auto" is sized to the device by the trainer
    tokens = batch_size * max_seq_length
    if tokens > MAX_TOKENS_PER_MICRO_BATCH:
        raise InvalidRequest(
            f"batch_size x max_seq_length = {tokens:,} tokens per micro-batch cannot fit any GPU "
            f"(at most {MAX_TOKENS_PER_MICRO_BATCH:,}); lower batch_size and raise gradient_accumulation_steps",
            param="hyperparameters.batch_size",
        )


def check_gpu_count(settings: Settings, gpus: int) -> None:
    """At most ``TUNEQ_MAX_GPUS_PER_JOB``: the operator's bound on one host's GPUs a job may hold."""
    if gpus > settings.max_gpus_per_job:
        raise ValueOutOfRange(
            f"gpus is {gpus}, but a job may use at most {settings.max_gpus_per_job} GPUs of one host here; "
            "ask for fewer (raise batch_size or gradient_accumulation_steps for a larger global batch)",
            param="gpus",
        )
