"""CPU of the API's two heaviest requests without HTTP: a submit, and a list page of 100 jobs.

In process, on PostgreSQL and Redis, as the API runs them: a submit is the key
lookup, ``core.jobs.submit_job`` (checks, estimate, inserts) and the commit
with its queue message, in one transaction (api.deps.Writer); a list page is
the key lookup and ``core.job_list_page`` on an autocommit session
(api.deps.Reader). CPU time (``time.process_time``) per call, so waits on the
database and Redis do not count; several rounds, since this machine's speed
drifts. Compare trees by running each tree's own copy, alternating (the
script follows the API's pools, which change between trees):

    repo=$PWD; git worktree add ../base <commit>
    for round in 1 2 3 4; do for tree in ../base .; do
      (cd $tree && PYTHONPATH=$PWD $repo/.venv/bin/python bench/hot_paths.py --rounds 1)
    done; done

Needs PostgreSQL (--pg-url, a schema of its own is created and dropped) and Redis (--redis-url, a database
it flushes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from redis import Redis
from service import database  # bench/service.py: a fresh PostgreSQL schema

from api.deps import tenant_of
from core import jobs
from core.api_keys import create_key
from core.db import read_session_factory, transaction, write_session_factory
from core.files import store_upload
from core.job_list_page import job_list_page
from core.migrate import upgrade_database
from core.queue import job_queue
from core.settings import Settings
from trainer.tiny_model import make_tiny_model

TENANT = "bench"
HYPERPARAMETERS = {"n_epochs": 1, "batch_size": 4, "max_seq_length": 128}


def write_dataset(path: Path, examples: int = 50) -> Path:
    lines = []
    for n in range(examples):
        messages = [{"role": "user", "content": f"question {n}"}, {"role": "assistant", "content": "answer " * (n + 1)}]
        lines.append(json.dumps({"messages": messages}) + "\n")
    path.write_text("".join(lines))
    return path


def cpu_ms(call: Callable[[], object], calls: int) -> float:
    began = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - began) * 1000 / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200, help="per round and request")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tq-hot"))
    model = make_tiny_model(root / "models" / "tiny")
    with database("postgresql", args.pg_url, root) as url:
        settings = Settings(
            database_url=url,
            data_root=root,
            redis_url=args.redis_url,
            tenant_limits={"max_queued_jobs": None},
            model_roots=[root / "models"],
        )
        upgrade_database(url)
        queue = job_queue(Redis.from_url(args.redis_url), settings)
        queue.connection.flushdb()
        dataset = write_dataset(root / "chat.jsonl")
        with transaction(url) as session, dataset.open("rb") as stream:
            authorization = "Bearer " + create_key(session, TENANT).secret
            file_id = store_upload(session, settings, tenant=TENANT, filename="chat.jsonl", stream=stream).id
        new = jobs.NewJob(base_model=str(model), training_file=file_id, hyperparameters=HYPERPARAMETERS)

        def submit() -> None:
            with write_session_factory(url)() as session, session.begin():
                tenant = tenant_of(settings, session, authorization)
                jobs.submit_job(session, settings, queue, tenant=tenant, new=new)

        def list_page() -> None:
            with read_session_factory(url)() as session:
                job_list_page(session, tenant=tenant_of(settings, session, authorization), limit=100)

        for _ in range(101):  # warm, and enough jobs for a full page
            submit()
        for _ in range(20):
            list_page()
        rounds = [(cpu_ms(submit, args.calls), cpu_ms(list_page, args.calls)) for _ in range(args.rounds)]
        queue.connection.flushdb()
    print(
        json.dumps(
            {
                "submit_cpu_ms": [round(s, 2) for s, _ in rounds],
                "list_page_cpu_ms": [round(p, 2) for _, p in rounds],
                "submit_median_ms": round(statistics.median(s for s, _ in rounds), 2),
                "list_page_median_ms": round(statistics.median(p for _, p in rounds), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
