"""What a job will cost before it runs: tokens, "auto" resolved, steps, time, USD and finish time.

The numbers follow the trainer's own rules: tokens are counted with the model's tokenizer
(``core.token_counts``), rows are packed as TRL's best-fit-decreasing packing packs them, "auto" is
resolved by ``trainer.auto_hyperparameters`` for an assumed device (a live worker's, else the one in
settings), and steps follow the HF Trainer's count. Time is trained tokens over the throughput table
(``core.throughput``) plus start-up; cost is that time at the device's price (``core.cost``).
A job on N GPUs: each step takes N x batch_size x accumulation rows, throughput is assumed to scale
linearly with N (an upper bound), and every GPU is paid for.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from core.clock import db_now_minus
from core.cost import attempt_charge, price_per_hour
from core.db import utcnow
from core.model_files import read_json
from core.models import Worker
from core.settings import Settings
from core.throughput import STARTUP_SECONDS, size_class, throughput
from core.token_counts import CountedWith, cached_hub_file, count_tokens
from core.workers import WorkerStatus
from trainer.auto_hyperparameters import (
    DataSize,
    DeviceProfile,
    activation_bytes_per_token,
    concrete,
    held_out_indices,
    resolve_hyperparameters,
)
from trainer.config import Hyperparameters, Quantization

# TRL's pack_dataset packs through datasets' map, 1,000 examples per batch: rows never mix batches.
PACKING_BATCH_EXAMPLES = 1000
# Weights in memory per parameter: NF4 is half a byte plus quantization constants and the 16-bit
# embeddings and norms; plain LoRA keeps the base in 16 bits.
BYTES_PER_PARAMETER = {Quantization.NF4: 0.6, Quantization.NONE: 2.0}
# A model whose shape we cannot read is sized like Qwen3-8B, the common case.
FALLBACK_SHAPE = {"hidden_size": 4096, "num_hidden_layers": 36, "intermediate_size": 12288}
FALLBACK_PARAMETERS = 8_000_000_000

_HYPERPARAMETERS: TypeAdapter[Hyperparameters] = TypeAdapter(Hyperparameters)


class TokenEstimate(BaseModel):
    examples: int = Field(description="training examples (after any validation_split hold-out)")
    training_tokens: int = Field(description="tokens per epoch after truncation to max_seq_length")
    truncated_examples: int
    rows: int = Field(description="training rows (packed rows when packing)")
    longest_row: int
    counted_with: str = Field(description="'tokenizer' (exact) or 'bytes/4 heuristic'")
    tokenizer: str = Field(description="which tokenizer counted, or why none could")
    from_cache: bool


class DeviceEstimate(BaseModel):
    device: str = Field(description="cuda or cpu")
    name: str
    memory_bytes: int
    assumed_from: str = Field(description="why this device: a live worker's, or the settings' default")


class ThroughputEstimate(BaseModel):
    tokens_per_second: float
    source: str = Field(description="measured, reported or placeholder (core/throughput.py)")
    note: str
    model_parameters: int
    size_class: str
    startup_seconds: float


class Estimate(BaseModel):
    object: str = "fine_tune.estimate"
    base_model: str
    tokens: TokenEstimate
    hyperparameters: dict[str, Any] = Field(description="with every 'auto' resolved for the assumed device")
    decisions: list[str]
    device: DeviceEstimate
    total_steps: int
    trained_tokens: int = Field(description="training tokens x epochs")
    throughput: ThroughputEstimate
    gpus: int = Field(default=1, description="GPUs the job trains on, data-parallel (the time is on all of them)")
    seconds: float = Field(description="start-up plus training time on the assumed device")
    price_per_hour: float
    cost_usd: float = Field(description="seconds x gpus at the price per hour")
    estimated_finish: datetime = Field(description="now + seconds: a job that starts at once; queueing is not known")
    notes: list[str]


@dataclass(frozen=True)
class ModelShape:
    parameters: int
    activation_bytes_per_token: int
    source: str


def _parameters(config: dict[str, Any]) -> int:
    hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
    intermediate = int(config.get("intermediate_size") or 4 * hidden)
    heads = int(config.get("num_attention_heads") or 1)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    embeddings = int(config.get("vocab_size") or 0) * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return layers * (attention + 3 * hidden * intermediate) + embeddings


def _config_json(base_model: str) -> dict[str, Any] | None:
    if Path(base_model).is_absolute():
        path: Path | None = Path(base_model) / "config.json"
    else:
        path = cached_hub_file(base_model, "config.json")
    config = read_json(path) if path is not None else None
    if not isinstance(config, dict):
        return None
    text_config = config.get("text_config")
    return text_config if isinstance(text_config, dict) else config


def _parameters_from_name(base_model: str) -> int | None:
    """'Qwen/Qwen3-8B' -> 8e9, 'Qwen3-0.6B' -> 6e8, 'SmolLM-135M' -> 1.35e8."""
    match = re.search(r"(\d+(?:\.\d+)?)([BM])(?![A-Za-z])", base_model.rsplit("/", 1)[-1], flags=re.IGNORECASE)
    if match is None:
        return None
    return int(float(match.group(1)) * (1e9 if match.group(2).upper() == "B" else 1e6))


def model_shape(base_model: str) -> ModelShape:
    config = _config_json(base_model)
    if config is not None and "hidden_size" in config and "num_hidden_layers" in config:
        hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
        intermediate = int(config.get("intermediate_size") or 4 * hidden)
        return ModelShape(_parameters(config), activation_bytes_per_token(hidden, layers, intermediate), "config.json")
    activations = activation_bytes_per_token(
        FALLBACK_SHAPE["hidden_size"], FALLBACK_SHAPE["num_hidden_layers"], FALLBACK_SHAPE["intermediate_size"]
    )
    from_name = _parameters_from_name(base_model)
    if from_name is not None:
        return ModelShape(from_name, activations, "the model's name (no config.json here); activations as Qwen3-8B")
    return ModelShape(FALLBACK_PARAMETERS, activations, "unknown (no config.json, no size in the name): as Qwen3-8B")


@lru_cache(maxsize=4)
def _newest_live_worker(stale_seconds: float) -> Select[str, str | None, int | None]:
    """Built once per staleness window and run on the session's connection, not through the ORM: every submit
    and estimate runs it, and building the expression and loading a Worker entity cost more than the query."""
    return (
        select(Worker.id, Worker.gpu_name, Worker.gpu_memory_bytes)
        # Two comparisons, not IN: an IN list is an "expanding" parameter, rendered anew on every run.
        .where(or_(Worker.status == WorkerStatus.IDLE.value, Worker.status == WorkerStatus.BUSY.value))
        .where(Worker.heartbeat_at >= db_now_minus(stale_seconds))
        .order_by(Worker.heartbeat_at.desc())
        .limit(1)
    )


def assumed_device(session: Session, settings: Settings) -> DeviceEstimate:
    """The device of the most recently seen live worker; with none, the settings' estimate GPU."""
    worker = session.connection().execute(_newest_live_worker(settings.heartbeat_stale_seconds)).first()
    if worker is not None:
        device = "cuda" if worker.gpu_name else "cpu"
        return DeviceEstimate(
            device=device,
            name=worker.gpu_name or "cpu",
            memory_bytes=worker.gpu_memory_bytes or 0,
            assumed_from=f"live worker {worker.id}",
        )
    return DeviceEstimate(
        device="cuda",
        name=settings.estimate_gpu_name,
        memory_bytes=settings.estimate_gpu_memory_bytes,
        assumed_from="no live worker: TUNEQ_ESTIMATE_GPU_NAME / TUNEQ_ESTIMATE_GPU_MEMORY_BYTES",
    )


def packed_rows(lengths: list[int], seq_length: int) -> list[int]:
    """Row lengths of TRL's best-fit-decreasing packing: each example goes to the row it fills best."""
    rows: list[int] = []
    for start in range(0, len(lengths), PACKING_BATCH_EXAMPLES):
        spaces: list[int] = []  # free space of each open row, sorted
        filled: dict[int, list[int]] = {}  # free space -> indices of rows with that space
        batch_rows: list[int] = []
        for length in sorted((n for n in lengths[start : start + PACKING_BATCH_EXAMPLES] if n > 0), reverse=True):
            at = bisect.bisect_left(spaces, length)
            if at < len(spaces):
                space = spaces.pop(at)
                row = filled[space].pop()
            else:
                space, row = seq_length, len(batch_rows)
                batch_rows.append(0)
            batch_rows[row] += length
            left = space - length
            if left > 0:
                bisect.insort(spaces, left)
                filled.setdefault(left, []).append(row)
        rows.extend(batch_rows)
    return rows


def steps_per_epoch(rows: int, batch_size: int, accumulation: int) -> int:
    """The HF Trainer's count: a last, partial accumulation still makes a step."""
    batches = math.ceil(rows / batch_size)
    return max(batches // accumulation + int(batches % accumulation > 0), 1)


def _training_lengths(lengths: tuple[int, ...], hp: Hyperparameters, has_validation_file: bool) -> tuple[int, ...]:
    if has_validation_file or hp.validation_split <= 0:
        return lengths
    held = held_out_indices(len(lengths), hp.validation_split, hp.seed)
    return tuple(n for i, n in enumerate(lengths) if i not in held)


@lru_cache(maxsize=16)
def _data_size(lengths: tuple[int, ...], max_seq_length: int, packing: bool) -> tuple[DataSize, int]:
    """Cached per process: packing 100,000 examples in Python took ~40 ms, on every submit of a sweep that
    varies only the learning rate. The same lengths come back as the same tuple (core.token_counts), which
    the cache's key then shares; a validation split's lengths are a tuple of their own."""
    truncated = [min(n, max_seq_length) for n in lengths]
    rows = packed_rows(truncated, max_seq_length) if packing else truncated
    too_long = sum(n > max_seq_length for n in lengths)
    return DataSize(len(lengths), len(rows), sum(truncated), max(rows, default=1)), too_long


@dataclass(frozen=True)
class EstimateInput:
    base_model: str  # as checked by core.base_models: a model directory's resolved path, or a hub id
    training_path: Path  # the dataset file on this host
    training_sha256: str | None  # known for uploaded files; computed otherwise
    hyperparameters: dict[str, Any]
    has_validation_file: bool
    gpus: int


def _sha256_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def estimate(session: Session, settings: Settings, job: EstimateInput, now: datetime | None = None) -> Estimate:
    """Estimate a job that has passed submit's checks (model allowed, dataset resolved and valid)."""
    hp = _HYPERPARAMETERS.validate_python(job.hyperparameters)
    sha256 = job.training_sha256 or _sha256_of(job.training_path)
    counts = count_tokens(settings, job.base_model, job.training_path, sha256)
    lengths = _training_lengths(counts.lengths, hp, job.has_validation_file)
    data, too_long = _data_size(lengths, hp.max_seq_length, hp.packing)
    device = assumed_device(session, settings)
    shape = model_shape(job.base_model)
    model_bytes = int(shape.parameters * BYTES_PER_PARAMETER[hp.quantization])
    profile = DeviceProfile(
        device.device, device.memory_bytes, model_bytes, shape.activation_bytes_per_token, processes=job.gpus
    )
    resolved, decisions = resolve_hyperparameters(hp, data, profile)
    epochs = concrete(resolved.n_epochs)
    steps = epochs * steps_per_epoch(
        data.rows, job.gpus * concrete(resolved.batch_size), concrete(resolved.gradient_accumulation_steps)
    )
    cls = size_class(shape.parameters)
    rate = throughput(device.device, device.name, cls)
    startup = STARTUP_SECONDS["cuda" if device.device == "cuda" else "cpu"]
    trained_tokens = data.tokens * epochs
    seconds = round(startup + trained_tokens / (rate.tokens_per_second * job.gpus), 1)
    notes = [f"device: {device.device} {device.name} ({device.assumed_from})", f"model size from {shape.source}"]
    if job.gpus > 1:
        notes.append(f"{job.gpus} GPUs data-parallel: throughput assumed to scale linearly, so time is a lower bound")
    if counts.counted_with is CountedWith.HEURISTIC:
        notes.append(f"tokens estimated as UTF-8 bytes / 4: {counts.tokenizer}")
    if rate.source != "measured":
        notes.append(f"throughput is a {rate.source} figure ({rate.note}), not measured by this service")
    return Estimate(
        base_model=job.base_model if not Path(job.base_model).is_absolute() else Path(job.base_model).name,
        tokens=TokenEstimate(
            examples=data.examples,
            training_tokens=data.tokens,
            truncated_examples=too_long,
            rows=data.rows,
            longest_row=data.longest_row,
            counted_with=counts.counted_with.value,
            tokenizer=counts.tokenizer,
            from_cache=counts.from_cache,
        ),
        hyperparameters=_HYPERPARAMETERS.dump_python(resolved, mode="json"),
        decisions=decisions,
        device=device,
        total_steps=steps,
        trained_tokens=trained_tokens,
        throughput=ThroughputEstimate(
            tokens_per_second=rate.tokens_per_second,
            source=rate.source.value,
            note=rate.note,
            model_parameters=shape.parameters,
            size_class=cls.value,
            startup_seconds=startup,
        ),
        gpus=job.gpus,
        seconds=seconds,
        price_per_hour=price_per_hour(settings, device.device, device.name),
        cost_usd=attempt_charge(settings, device.device, device.name, seconds, job.gpus).cost_usd,
        estimated_finish=(now or utcnow()) + timedelta(seconds=seconds),
        notes=notes,
    )
