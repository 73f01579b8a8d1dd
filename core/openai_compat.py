"""How OpenAI's fine-tuning vocabulary maps onto tuneq's (pure functions, shared by /v1 and the CLI).

OpenAI sets ``learning_rate_multiplier``; tuneq's trainer takes an absolute ``learning_rate``. The
multiplier scales the rate "auto" would pick for the job's method (``trainer.auto_hyperparameters``),
so "auto" and 1.0 train alike.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from pydantic import TypeAdapter, ValidationError

from core.errors import InvalidRequest
from core.ids import JOB_PREFIX
from core.models import Job
from core.states import JobStatus
from trainer.auto_hyperparameters import LEARNING_RATE
from trainer.config import AUTO, Hyperparameters, Quantization

MODEL_PREFIX = "ft"


def base_learning_rate(quantization: str) -> float:
    return LEARNING_RATE[Quantization(quantization)]


def tuneq_hyperparameters(openai: dict[str, Any], own: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """OpenAI's ``n_epochs``/``batch_size``/``learning_rate_multiplier`` plus tuneq's own options -> Hyperparameters."""
    clash = {"n_epochs", "batch_size", "learning_rate"} & {k for k, v in own.items() if v is not None}
    if clash and any(openai.get(k) is not None for k in ("n_epochs", "batch_size", "learning_rate_multiplier")):
        raise InvalidRequest(
            f"tuneq.{sorted(clash)[0]} and method.supervised.hyperparameters both set; set each value once",
            param="tuneq",
        )
    merged = {k: v for k, v in own.items() if v is not None}
    for key in ("n_epochs", "batch_size"):
        if openai.get(key) is not None:
            merged[key] = openai[key]
    multiplier = openai.get("learning_rate_multiplier")
    if multiplier is not None and multiplier != AUTO:
        merged["learning_rate"] = float(multiplier) * base_learning_rate(merged.get("quantization", Quantization.NF4))
    if seed is not None:
        merged["seed"] = seed
    return merged


def openai_hyperparameters(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """A job's stored (resolved once it ran) hyperparameters, in OpenAI's three names."""
    rate = hyperparameters.get("learning_rate", AUTO)
    quantization = hyperparameters.get("quantization", Quantization.NF4.value)
    multiplier = rate if rate == AUTO else round(float(rate) / base_learning_rate(quantization), 6)
    return {
        "n_epochs": hyperparameters.get("n_epochs", AUTO),
        "batch_size": hyperparameters.get("batch_size", AUTO),
        "learning_rate_multiplier": multiplier,
    }


def fine_tuned_model(job: Job) -> str | None:
    """``ft:<base model name>:<suffix>:<job id>`` once the job succeeded: stable, and it names its job."""
    if job.status != JobStatus.SUCCEEDED:
        return None
    base = PurePosixPath(job.base_model).name
    return f"{MODEL_PREFIX}:{base}:{job.suffix or 'tuneq'}:{job.id}"


def job_id_of_model(name: str) -> str:
    """The job a fine-tuned model name belongs to (its last ``:`` part)."""
    parts = name.split(":")
    if len(parts) < 4 or parts[0] != MODEL_PREFIX or not parts[-1].startswith(f"{JOB_PREFIX}-"):
        raise InvalidRequest(f"{name!r} is not a fine-tuned model name (ft:<base>:<suffix>:ftjob-…)", param="model")
    return parts[-1]


def validated_hyperparameters(merged: dict[str, Any]) -> dict[str, Any]:
    """Check merged hyperparameters against the trainer's own schema; defaults filled in, as stored on the job."""
    try:
        parsed = _HYPERPARAMETERS.validate_python(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"][:1]) or "hyperparameters"
        param = field if field in ("n_epochs", "batch_size") else f"tuneq.{field}"
        raise InvalidRequest(f"{param}: {first['msg']}", param=param) from exc
    dumped: dict[str, Any] = _HYPERPARAMETERS.dump_python(parsed, mode="json")
    return dumped


_HYPERPARAMETERS: TypeAdapter[Hyperparameters] = TypeAdapter(Hyperparameters)
