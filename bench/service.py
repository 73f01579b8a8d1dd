"""Service load: submit, status and list at N concurrent clients, on SQLite or PostgreSQL, small or big tables.

Loopback only and bounded: a fixed time (--seconds) per operation and
client count, each with a 15 s client timeout (a timeout counts as an error).
"Shed" answers are 429/503 with Retry-After: the service refusing quickly
beyond capacity, which is allowed; "errors" are anything else (500s, timeouts,
dropped connections) and must be 0. Also measured: the claim query's time
(rolled back, so nothing is claimed) and dispatch latency, from a submit's
202 to the job being ``running``, with one real CPU worker.

    .venv/bin/python bench/service.py --database postgresql --clients 50 200
    .venv/bin/python bench/service.py --database sqlite --clients 50 200
    .venv/bin/python bench/service.py --database postgresql --queued 10000 --finished 100000

Load comes from wrk (`apt-get install wrk`), so the cores go to the service, not to the client.

To compare two trees on a machine whose speed drifts (here by 2x within an hour), run both at once:
``--against ../base`` starts a second API from that checkout on the same database, and every row is
measured ``--rounds`` times on each, alternating (baseline first in odd rounds), then summarised as
ratios of the medians (this tree / baseline):

    git worktree add ../base main
    .venv/bin/python bench/service.py --api-workers 2 --clients 1 200 --ops submit status --against ../base --rounds 3

Needs PostgreSQL (--pg-url) and Redis (--redis-url, a database it may flush).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import redis
from rq import Worker as RQWorker
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from core.api_keys import create_key
from core.db import transaction
from core.migrate import upgrade_database
from core.models import Job
from core.models import Worker as WorkerRow
from core.scheduling import next_candidates
from core.settings import Settings
from core.workers import WorkerStatus
from tuneq.processes import Service, start_api, start_worker

TENANT = "bench"
PAGE = 100  # jobs per list page, as the target counts them
HYPERPARAMETERS = {"n_epochs": 1, "batch_size": 4, "max_seq_length": 128}


@contextmanager
def database(kind: str, pg_url: str, root: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{root / 'tuneq.db'}"
        return
    schema = f"bench_{os.getpid()}"
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def seed(url: str, queued: int, finished: int, training_path: str) -> None:
    """Bulk-insert rows straight into the jobs table: queued for 100 other tenants, finished for the bench tenant."""
    now = datetime.now(UTC)

    def row(i: int, status: str, tenant: str) -> dict[str, Any]:
        at = now - timedelta(seconds=finished + queued - i)
        done = status != "queued"
        return {
            "id": f"ftjob-seed{status[0]}{i:09d}",
            "tenant": tenant,
            "status": status,
            "base_model": "seed",
            "training_file": "seed",
            "training_path": training_path,
            "hyperparameters": {},
            "priority": 0,
            "attempt": 1 if done else 0,
            "max_attempts": 3,
            "step": 0,
            "trained_tokens": 0,
            "gpu_seconds": 0.0,
            "cost_usd": 0.0,
            "created_at": at,
            "updated_at": at,
            "started_at": at if done else None,
            "finished_at": at if done else None,
        }

    rows = [row(i, "queued", f"tenant-{i % 100}") for i in range(queued)]
    rows += [row(queued + i, "succeeded", TENANT) for i in range(finished)]
    for start in range(0, len(rows), 5000):
        with transaction(url) as session:
            session.execute(insert(Job), rows[start : start + 5000])
    # Statistics as autovacuum keeps them on a live table: measured right after a bulk load, the planner still
    # believes the tables empty and pages a list through 100,000 rows instead of reading 100 by index.
    with transaction(url) as session:
        session.execute(text("ANALYZE"))


def percentile(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(p / 100 * len(sorted_ms)))] if sorted_ms else float("nan")


WRK_SCRIPT = Path(__file__).with_name("wrk_report.lua")


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str
    body: dict[str, Any] | None = None


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time of a process and its children (uvicorn's worker processes), user and system."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        with suppress(psutil.NoSuchProcess):
            times = each.cpu_times()
            total += times.user + times.system
    return total


def children_cpu_seconds() -> float:
    """CPU time of this process's finished children (the wrk runs), user and system."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load(base_url: str, key: str, clients: int, seconds: int, op: Operation, api: psutil.Process) -> dict[str, Any]:
    """``clients`` keep-alive connections, each sending ``op`` back to back for ``seconds`` (wrk).

    A C load generator, so the two shared cores go to the service rather than
    to the client (httpx spent 2-4 ms of CPU per request: more than the server).
    """
    env = {**os.environ, "BENCH_METHOD": op.method, "BENCH_KEY": key}
    if op.body is not None:
        env["BENCH_BODY"] = json.dumps(op.body)
    threads = min(clients, 2)
    command = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--timeout", "15s", "-s", str(WRK_SCRIPT)]
    before, client_before = cpu_seconds(api), children_cpu_seconds()
    run = subprocess.run([*command, base_url + op.path], env=env, capture_output=True, text=True, check=True)
    server_cpu, client_cpu = cpu_seconds(api) - before, children_cpu_seconds() - client_before
    report = json.loads(run.stdout.strip().splitlines()[-1])
    answers = report["answers"]
    errors = {
        kind: report[kind]
        for kind in ("other_status", "connect_errors", "read_errors", "write_errors", "timeouts")
        if report[kind]
    }
    return {
        "clients": clients,
        "answers": answers,
        "ok": report["ok"],
        "shed": report["shed"],
        "errors": errors,
        "req_per_s": round(answers / report["duration_s"], 1),
        "ok_per_s": round(report["ok"] / report["duration_s"], 1),
        "p50_ms": report["p50_ms"],
        "p95_ms": report["p95_ms"],
        "p99_ms": report["p99_ms"],
        "max_ms": report["max_ms"],
        "server_cpu_ms_per_req": round(server_cpu * 1000 / max(answers, 1), 2),
        # wrk's own share of the two cores: it hands every response body to the Lua script
        "client_cpu_ms_per_req": round(client_cpu * 1000 / max(answers, 1), 2),
    }


def ratios(results: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """This tree's medians over the baseline's, for the measures that decide a change."""

    def ratio(measure: str) -> float:
        this, baseline = (statistics.median(r[measure] for r in results[name]) for name in ("this", "baseline"))
        return round(this / baseline, 3) if baseline else float("nan")

    return {f"{measure}_ratio": ratio(measure) for measure in ("ok_per_s", "p99_ms", "server_cpu_ms_per_req")}


def candidates_before(session: Session, settings: Settings) -> list[str]:
    """The claim query before this change (usage aggregated over every job ever), as the baseline of the ratio."""
    usage = (
        select(
            Job.tenant.label("tenant"),
            func.count().filter(Job.status == "running").label("running"),
            func.max(Job.started_at).label("last_started"),
        )
        .group_by(Job.tenant)
        .subquery()
    )
    query = (
        select(Job.id)
        .join(usage, usage.c.tenant == Job.tenant)
        .where(Job.status == "queued")
        .order_by(usage.c.running, usage.c.last_started.asc().nulls_first(), Job.priority.desc(), Job.created_at)
        .limit(8)
    )
    return list(session.scalars(query))


def claim_query_ms(settings: Settings, query: Callable[[Session, Settings], list[str]], repeats: int = 20) -> float:
    timings = []
    for _ in range(repeats):
        with transaction(settings.resolved_database_url) as session:
            began = time.perf_counter()
            query(session, settings)
            timings.append((time.perf_counter() - began) * 1000)
            session.rollback()
    return round(statistics.median(timings), 2)


def dispatch_ms(client: httpx.Client, body: dict[str, Any], worker: Service, url: str, repeats: int) -> list[float]:
    """Submit to an idle worker, then poll until running; the job is cancelled at once.

    Before each sample the worker must be idle again (its job process gone and
    its row back to idle), or the sample would time the previous job process's
    exit instead of the dispatch.
    """
    timings = []
    for _ in range(repeats):
        wait_for_idle_worker(url, worker)
        job_id = client.post("/finetune", json=body).raise_for_status().json()["id"]
        began = time.perf_counter()
        while client.get(f"/finetune/{job_id}").json()["status"] == "queued":
            assert worker.process.poll() is None, worker.log_tail()
            assert time.perf_counter() - began < 60, "not dispatched within 60 s"
        timings.append(round((time.perf_counter() - began) * 1000, 1))
        client.post(f"/finetune/{job_id}/cancel")
    return timings


def wait_for_idle_worker(url: str, worker: Service, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with transaction(url) as session:
            if session.scalars(select(WorkerRow.status)).all() == [WorkerStatus.IDLE.value]:
                return
        assert worker.process.poll() is None and time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--seconds", type=int, default=10, help="per operation and client count")
    parser.add_argument("--api-workers", type=int, default=1, help="API server processes (TUNEQ_API_WORKERS)")
    parser.add_argument("--queued", type=int, default=0, help="queued jobs to bulk-insert first")
    parser.add_argument("--finished", type=int, default=0, help="finished jobs to bulk-insert first")
    parser.add_argument("--dispatches", type=int, default=3, help="dispatch latency samples (0: skip)")
    parser.add_argument("--ops", nargs="+", choices=["submit", "status", "list"], default=["submit", "status", "list"])
    parser.add_argument("--against", type=Path, help="a checkout to serve as the baseline, alternating with this tree")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each row on each tree (--against)")
    args = parser.parse_args()

    from trainer.sample_data import write_sample_dataset
    from trainer.tiny_model import make_tiny_model

    root = Path(tempfile.mkdtemp(prefix="tqb"))
    redis.Redis.from_url(args.redis_url).flushdb()
    with database(args.database, args.pg_url, root) as url:
        upgrade_database(url)
        model = make_tiny_model(root / "models" / "tiny")
        env = {
            "TUNEQ_DATABASE_URL": url,
            "TUNEQ_REDIS_URL": args.redis_url,
            "TUNEQ_DATA_ROOT": str(root),
            "TUNEQ_QUEUE_NAME": f"bench-{uuid.uuid4().hex[:6]}",
            "TUNEQ_RUN_MAINTENANCE_IN_API": "false",  # 10,000 seeded queued jobs have no messages on purpose
            "TUNEQ_TENANT_LIMITS": json.dumps({"max_queued_jobs": None}),
            "TUNEQ_MODEL_ROOTS": json.dumps([str(model.parent)]),
            "HF_HUB_OFFLINE": "1",
            "TUNEQ_API_WORKERS": str(args.api_workers),
        }
        os.environ.update(env)
        settings = Settings()
        with transaction(url) as session:
            key = create_key(session, TENANT, "bench").secret
        api, base_url = start_api(root / "logs", env=env)
        baseline = (
            start_api(
                root / "logs",
                env={**env, "PYTHONPATH": str(args.against.resolve())},
                name="baseline",
                cwd=args.against.resolve(),
            )
            if args.against
            else None
        )
        try:
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
                dataset = write_sample_dataset(root / "capitals.jsonl")
                with dataset.open("rb") as handle:
                    file_id = client.post("/files", files={"file": ("c.jsonl", handle)}).raise_for_status().json()["id"]
                body = {"base_model": str(model), "training_file": file_id, "hyperparameters": HYPERPARAMETERS}
                began = time.perf_counter()
                seed(url, args.queued, args.finished, f"files/{file_id}.jsonl")
                seeded_s = round(time.perf_counter() - began, 1)
                for _ in range(PAGE):  # a full first page for the list pages, even on an empty table
                    known = client.post("/finetune", json=body).raise_for_status().json()["id"]
            ops = [
                Operation("submit", "POST", "/finetune", body),
                Operation("status", "GET", f"/finetune/{known}"),
                Operation("list", "GET", f"/finetune?limit={PAGE}"),
            ]
            header = {
                "database": args.database,
                "queued": args.queued,
                "finished": args.finished,
                "api_workers": args.api_workers,
            }
            claim = {
                "claim_query_ms": claim_query_ms(settings, next_candidates),
                "claim_query_before_ms": claim_query_ms(settings, candidates_before),
            }
            print(json.dumps({**header, "seeded_s": seeded_s, **claim}))
            trees = [("this", base_url, psutil.Process(api.process.pid))]
            if baseline is not None:
                trees.insert(0, ("baseline", baseline[1], psutil.Process(baseline[0].process.pid)))
            for clients in args.clients:
                for op in (op for op in ops if op.name in args.ops):
                    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in trees}
                    for round_ in range(1, (args.rounds if baseline else 1) + 1):
                        for name, url_of_tree, server in trees if round_ % 2 else trees[::-1]:
                            result = load(url_of_tree, key, clients, args.seconds, op, server)
                            results[name].append(result)
                            tree = {"tree": name, "round": round_} if baseline else {}
                            print(json.dumps({**header, "op": op.name, **tree, **result}), flush=True)
                    if baseline is not None:
                        print(json.dumps({**header, "op": op.name, "clients": clients, **ratios(results)}), flush=True)
            if args.dispatches and not args.queued:  # with a backlog the worker rightly claims older jobs first
                redis.Redis.from_url(args.redis_url).flushdb()  # the load's submit messages: not this measure's
                with transaction(url) as session:
                    session.query(Job).filter(Job.tenant == TENANT, Job.status == "queued").delete()
                worker = start_worker(root / "logs", env=env)
                try:
                    started = time.monotonic()
                    while not RQWorker.all(connection=redis.Redis.from_url(args.redis_url)):  # listening
                        assert worker.process.poll() is None and time.monotonic() - started < 120, worker.log_tail()
                        time.sleep(0.1)
                    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as client:
                        samples = dispatch_ms(client, body, worker, url, args.dispatches)
                finally:
                    worker.stop()
                print(json.dumps({**header, "dispatch_ms": samples}))
        finally:
            api.stop()
            if baseline is not None:
                baseline[0].stop()


if __name__ == "__main__":
    main()
