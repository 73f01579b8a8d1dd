"""Chaos run: N jobs, M workers, random kill -9 of workers and one Redis flush, under several API processes.

Loopback only, bounded in time: a chaos phase (kills and the flush), then a
drain phase with no more faults, in which every job must finish. Prints jobs
submitted, succeeded, failed, lost (not finished after the drain, or failed
because their workers kept dying) and run twice at once (two attempts of one
job writing metrics over the same span of time). Lost and run-twice must be 0.

Every API process runs maintenance (the reaper and the reconciler) and the
client sends its requests to them in turn. On PostgreSQL (the default: a
fresh schema, dropped at the end) they take turns through maintenance's
advisory lock; the run also counts each process's maintenance actions (from
its "recovery:" log lines) and lost-worker verdicts written twice for one
attempt, which must be 0. ``--database-url sqlite --api-processes 1`` is the
first runs' single-process setup.

    .venv/bin/python bench/chaos.py --jobs 10 --workers 3 --minutes 5 --drain-minutes 12
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import redis
from service import database  # bench/service.py: a fresh PostgreSQL schema, or the embedded SQLite file
from sqlalchemy import select

from core.api_keys import create_key
from core.db import transaction
from core.migrate import upgrade_database
from core.models import JobEvent, JobMetric
from core.settings import Settings, get_settings
from trainer.sample_data import write_sample_dataset
from trainer.tiny_model import make_tiny_model
from tuneq.processes import Service, start_api, start_worker
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


def verdicts_written_twice(database_url: str) -> int:
    """The reaper's events for one attempt of one job beyond the first: two maintenance processes acting on it."""
    with transaction(database_url) as session:
        rows = session.execute(
            select(JobEvent.job_id, JobEvent.message).where(JobEvent.message.contains("stopped beating"))
        ).all()
    return len(rows) - len(set(rows))


def maintenance_actions(api: Service) -> int:
    """Jobs an API process's maintenance requeued, failed or re-enqueued, from its "recovery: …" log lines."""
    lines = api.log_path.read_text(errors="replace").splitlines()
    return sum(line.count("ftjob-") for line in lines if "recovery: " in line)


def submit_and_drive(
    args: argparse.Namespace, clients: list[httpx.Client], workers: list[Service], logs: Path, redis_url: str
) -> tuple[dict[str, Any], int, int]:
    """Submit the jobs, kill workers and flush Redis during the chaos phase, poll until done; (jobs, kills, flushes)."""
    rng = random.Random(args.seed)
    api = itertools.cycle(clients)  # each request to the next API process
    model = make_tiny_model(logs.parent / "models" / "tiny")
    dataset = write_sample_dataset(logs.parent / "samples" / "capitals.jsonl")
    with dataset.open("rb") as handle:
        file_id = next(api).post("/files", files={"file": ("c.jsonl", handle)}).raise_for_status().json()["id"]
    hyper = {"n_epochs": args.epochs, "learning_rate": 3e-3, "batch_size": 4, "max_seq_length": 128}
    body = {"base_model": str(model), "training_file": file_id, "hyperparameters": hyper}
    ids = [next(api).post("/finetune", json=body).raise_for_status().json()["id"] for _ in range(args.jobs)]
    kills = flushes = 0
    started = time.monotonic()
    chaos_ends = started + args.minutes * 60
    deadline = chaos_ends + args.drain_minutes * 60
    next_kill = started + args.kill_every
    flush_at = started + args.minutes * 60 / 4
    while time.monotonic() < deadline:
        statuses = {i: next(api).get(f"/finetune/{i}").json()["status"] for i in ids}
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
            redis.Redis.from_url(redis_url).flushdb()  # only this run's database
            flushes += 1
        time.sleep(1)
    return {i: next(api).get(f"/finetune/{i}").json() for i in ids}, kills, flushes


def run_chaos(args: argparse.Namespace, settings: Settings, kind: str) -> bool:
    """Start the API processes and workers, run the chaos and the drain, print the result line; True if it passed."""
    url = settings.resolved_database_url
    upgrade_database(url)  # before the API processes start, so the key can be created
    with transaction(url) as session:
        auth = {"Authorization": f"Bearer {create_key(session, 'chaos', 'bench/chaos.py').secret}"}
    logs = settings.data_root / "logs"
    apis = [start_api(logs, name=f"api-{i}") for i in range(args.api_processes)]
    workers = [start_worker(logs, name=f"worker-{i}") for i in range(args.workers)]
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            clients = [stack.enter_context(httpx.Client(base_url=u, headers=auth, timeout=30)) for _, u in apis]
            jobs, kills, flushes = submit_and_drive(args, clients, workers, logs, str(settings.redis_url))
    finally:
        for service in [*workers, *(api for api, _ in apis)]:
            service.stop()
    succeeded = sum(1 for j in jobs.values() if j["status"] == "succeeded")
    failed = [j for j in jobs.values() if j["status"] == "failed"]
    lost = sum(1 for j in jobs.values() if j["status"] not in TERMINAL) + sum(
        1 for j in failed if j["error"]["code"] == "worker_lost"
    )
    twice = sum(1 for i in jobs if overlapping_attempts(url, i))
    verdicts_twice = verdicts_written_twice(url)
    actions = ", ".join(str(maintenance_actions(api)) for api, _ in apis)
    print(
        f"jobs submitted {len(jobs)}, succeeded {succeeded}, failed {len(failed)}, lost {lost}, "
        f"run twice at once {twice} | workers {args.workers}, kill -9s {kills}, redis flushes {flushes}, "
        f"attempts {sum(j['attempt'] for j in jobs.values())}, wall {time.monotonic() - started:.0f}s | {kind}, "
        f"API processes {args.api_processes}, maintenance actions each [{actions}], "
        f"lost-worker verdicts written twice {verdicts_twice}"
    )
    return lost == 0 and twice == 0 and verdicts_twice == 0 and succeeded == len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--api-processes", type=int, default=2, help="each runs maintenance; requests go round-robin")
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL database to make a fresh schema in, or 'sqlite' (embedded)",
    )
    parser.add_argument("--redis-url", help="a Redis database it may flush (default: an embedded Redis)")
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the chaos phase")
    parser.add_argument("--drain-minutes", type=float, default=6.0, help="fault-free time for the rest to finish")
    parser.add_argument("--kill-every", type=float, default=30.0, help="seconds between kill -9s")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tq-chaos-"))
    kind = "sqlite" if args.database_url == "sqlite" else "postgresql"
    with database(kind, args.database_url, root) as url:
        os.environ.update(FAST_RECOVERY, TUNEQ_DATA_ROOT=str(root), TUNEQ_DATABASE_URL=url)
        if args.redis_url:
            os.environ["TUNEQ_REDIS_URL"] = args.redis_url
            redis.Redis.from_url(args.redis_url).flushdb()
        get_settings.cache_clear()
        with resolved_settings(own_redis=True) as settings:  # starts the embedded Redis unless --redis-url
            passed = run_chaos(args, settings, kind)
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
