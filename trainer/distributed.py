"""Data-parallel training on N processes (one per GPU, or gloo processes on a CPU): ``launch(spec, nprocs)``.

Each process trains the same model on its share of every optimizer step's micro-batches (the HF Trainer
shards the batches through accelerate; gradients are averaged by DDP), so ``batch_size`` is per process
and a step sees ``nprocs x batch_size x gradient_accumulation_steps`` rows. Rank 0 alone writes the
adapter, the samples and the model card, and its progress and events reach the caller's callbacks through
a queue. A stop request is agreed on by all ranks at each step end, so they stop at the same step.
"""

from __future__ import annotations

import os
import queue
import socket
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessRaisedException, start_processes

from trainer.checkpoints import CheckpointCallback
from trainer.config import RunSpec
from trainer.errors import TrainerError
from trainer.progress import ProgressCallback
from trainer.results import TrainResult
from trainer.run_control import StopCheck
from trainer.training_data import EventCallback

POLL_SECONDS = 0.2  # how often the parent checks should_stop and the children's health


@dataclass(frozen=True)
class _Message:
    kind: str  # "progress", "event", "checkpoint", "result" or "error"
    payload: Any


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _agreed_stop(stop: Event, device: torch.device) -> StopCheck:
    """True on every rank once any rank has seen the stop request (one tiny all-reduce per step)."""

    def should_stop() -> bool:
        flag = torch.tensor([int(stop.is_set())], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    return should_stop


def _run_rank(rank: int, spec: RunSpec, nprocs: int, port: int, messages: Queue[_Message], stop: Event) -> None:
    from trainer.train import train

    on_cuda = torch.cuda.is_available()
    if on_cuda:
        torch.cuda.set_device(rank)
    # torchrun's environment protocol: accelerate reads it to shard the batches and joins the group started here.
    ranks = {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": nprocs, "LOCAL_WORLD_SIZE": nprocs}
    os.environ.update({key: str(value) for key, value in ranks.items()})
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    backend = "nccl" if on_cuda else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=nprocs)
    main = rank == 0
    if main:  # every rank has joined the group: say how the run is spread
        messages.put(_Message("event", f"data-parallel: {nprocs} processes over {backend}"))
    try:
        result = train(
            spec,
            on_progress=(lambda p: messages.put(_Message("progress", p))) if main else None,
            should_stop=_agreed_stop(stop, torch.device("cuda", rank) if on_cuda else torch.device("cpu")),
            on_event=(lambda line: messages.put(_Message("event", line))) if main else None,
            on_checkpoint=(lambda saved: messages.put(_Message("checkpoint", saved))) if main else None,
        )
        if main:
            messages.put(_Message("result", result))
    except TrainerError as exc:
        if main:
            messages.put(_Message("error", exc))
        raise
    finally:
        dist.destroy_process_group()


def launch(
    spec: RunSpec,
    nprocs: int,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    on_event: EventCallback | None = None,
    on_checkpoint: CheckpointCallback | None = None,
) -> TrainResult:
    """Run ``train(spec)`` data-parallel on ``nprocs`` processes (GPUs 0..nprocs-1 when CUDA is present).

    Returns rank 0's result; raises rank 0's ``TrainerError`` as is. With ``nprocs == 1`` it is ``train`` itself.
    The callbacks hear rank 0 (the processes hold the same adapter; rank 0 alone writes outputs).
    """
    if nprocs == 1:
        from trainer.train import train

        return train(spec, on_progress, should_stop, on_event, on_checkpoint)
    if torch.cuda.is_available() and torch.cuda.device_count() < nprocs:
        raise ValueError(f"{nprocs} processes asked for, but only {torch.cuda.device_count()} GPUs are visible")
    context = mp.get_context("spawn")
    messages: Queue[_Message] = context.Queue()
    stop = context.Event()
    processes = start_processes(
        _run_rank, args=(spec, nprocs, _free_port(), messages, stop), nprocs=nprocs, join=False, start_method="spawn"
    )
    outcome: list[_Message] = []
    handlers: dict[str, Callable[[Any], None]] = {
        "progress": on_progress or (lambda _: None),
        "event": on_event or (lambda _: None),
        "checkpoint": on_checkpoint or (lambda _: None),
        "result": outcome.append,
        "error": outcome.append,
    }
    try:
        while not processes.join(timeout=POLL_SECONDS):
            if should_stop is not None and should_stop():
                stop.set()
            _drain(messages, handlers)
    except ProcessRaisedException:
        _drain(messages, handlers)
        _raise_rank_zero_error(outcome)  # the domain error, as train() would have raised it
        raise
    _drain(messages, handlers)
    _raise_rank_zero_error(outcome)
    for message in outcome:
        if isinstance(message.payload, TrainResult):
            return message.payload
    raise RuntimeError("the training processes ended without a result")


def _drain(messages: Queue[_Message], handlers: dict[str, Callable[[Any], None]]) -> None:
    while True:
        try:
            message: _Message = messages.get_nowait()
        except queue.Empty:
            return
        handlers[message.kind](message if message.kind in ("result", "error") else message.payload)


def _raise_rank_zero_error(outcome: list[_Message]) -> None:
    for message in outcome:
        if message.kind == "error":
            raise message.payload


__all__ = ["launch"]
