"""Chaos run: N jobs, M workers, random kill -9 of workers and one Redis flush.

Loopback only, bounded in time: a chaos phase (kills and the flush), then a
drain phase with no more faults, in which every job must finish. Prints jobs
submitted, succeeded, failed, lost (not finished after the drain, or failed
because their workers kept dying) and run twice at once (two attempts of one
job writing metrics over the same span of time). Lost and run-twice must be 0.

    .venv/bin/python bench/chaos.py --jobs 10 --workers 3 --minutes 5 --drain-minutes 6
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import redis
from sqlalchemy import select

from core.db import transaction
from core.models import JobMetric
from core.settings import get_settings
from tuneq.processes import start_api, start_worker
from tuneq.runtime import resolved_settings

TERMINAL = {"succeeded", "failed", "cancelled"}
FAST_RECOVERY = {
    "TUNEQ_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "TUNEQ_HEARTBEAT_STALE_SECONDS": "8",
    "TUNEQ_MAINTENANCE_INTERVAL_SECONDS": "1",
    "TUNEQ_RECONCILE_AFTER_SECONDS": "2",
    "TUNEQ_MAX_ATTEMPTS": "10",
}


def overlapping_attempts(database_url: str, job_id: str) -> bool:
    with transaction(database_url) as session:
        rows = session.execute(select(JobMetric.attempt, JobMetric.created_at).where(JobMetric.job_id == job_id)).all()
    spans: dict[int, list[float]] = defaultdict(list)
    for attempt, created in rows:
        spans[attempt or 0].append(created.timestamp())
    ordered = sorted((min(t), max(t)) for t in spans.values())
    return any(later_start < earlier_end for (_, earlier_end), (later_start, _) in itertools.pairwise(ordered))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the chaos phase")
    parser.add_argument("--drain-minutes", type=float, default=6.0, help="fault-free time for the rest to finish")
    parser.add_argument("--kill-every", type=float, default=30.0, help="seconds between kill -9s")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    os.environ.update(FAST_RECOVERY)
    root = Path(tempfile.mkdtemp(prefix="tq-chaos-"))
    os.environ.setdefault("TUNEQ_DATA_ROOT", str(root))
    get_settings.cache_clear()

    from trainer.sample_data import write_sample_dataset
    from trainer.tiny_model import make_tiny_model

    with resolved_settings(own_redis=True) as settings:
        model = make_tiny_model(settings.data_root / "models" / "tiny")
        dataset = write_sample_dataset(settings.data_root / "samples" / "capitals.jsonl")
        logs = settings.data_root / "logs"
        api, base_url = start_api(logs)
        workers = [start_worker(logs, name=f"worker-{i}") for i in range(args.workers)]
        kills = flushes = 0
        started = time.monotonic()
        try:
            with httpx.Client(base_url=base_url, timeout=30) as client, dataset.open("rb") as handle:
                file_id = client.post("/files", files={"file": ("c.jsonl", handle)}).raise_for_status().json()["id"]
                hyper = {"n_epochs": args.epochs, "learning_rate": 3e-3, "batch_size": 4, "max_seq_length": 128}
                ids = [
                    client.post(
                        "/finetune", json={"base_model": str(model), "training_file": file_id, "hyperparameters": hyper}
                    )
                    .raise_for_status()
                    .json()["id"]
                    for _ in range(args.jobs)
                ]
                chaos_ends = started + args.minutes * 60
                deadline = chaos_ends + args.drain_minutes * 60
                next_kill = started + args.kill_every
                flush_at = started + args.minutes * 60 / 4
                statuses: dict[str, str] = {}
                while time.monotonic() < deadline:
                    statuses = {i: client.get(f"/finetune/{i}").json()["status"] for i in ids}
                    if all(s in TERMINAL for s in statuses.values()):
                        break
                    now = time.monotonic()
                    if now >= next_kill and now < chaos_ends:
                        victim = rng.randrange(len(workers))
                        workers[victim].kill_hard()
                        workers[victim] = start_worker(logs, name=f"worker-{victim}-r{kills}")
                        kills += 1
                        next_kill = now + args.kill_every
                    if flushes == 0 and now >= flush_at:
                        redis.Redis.from_url(str(settings.redis_url)).flushall()
                        flushes += 1
                    time.sleep(1)
                jobs = {i: client.get(f"/finetune/{i}").json() for i in ids}
        finally:
            for service in workers:
                service.stop()
            api.stop()
        succeeded = sum(1 for j in jobs.values() if j["status"] == "succeeded")
        failed = [j for j in jobs.values() if j["status"] == "failed"]
        lost = sum(1 for j in jobs.values() if j["status"] not in TERMINAL) + sum(
            1 for j in failed if j["error"]["code"] == "worker_lost"
        )
        twice = sum(1 for i in ids if overlapping_attempts(settings.resolved_database_url, i))
        attempts = sum(j["attempt"] for j in jobs.values())
        print(
            f"jobs submitted {len(ids)}, succeeded {succeeded}, failed {len(failed)}, lost {lost}, "
            f"run twice at once {twice} | workers {args.workers}, kill -9s {kills}, redis flushes {flushes}, "
            f"attempts {attempts}, wall {time.monotonic() - started:.0f}s"
        )
        raise SystemExit(0 if lost == 0 and twice == 0 and succeeded == len(ids) else 1)


if __name__ == "__main__":
    main()
