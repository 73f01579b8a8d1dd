"""`tuneq dev`: the API, one worker and a webhook dispatcher on embedded stores (SQLite, a private Redis)."""

from __future__ import annotations

import signal
import threading

import typer

from core.api_keys import create_key
from core.db import transaction
from core.migrate import upgrade_database
from tuneq.processes import Service, start_api, start_dispatcher, start_worker
from tuneq.runtime import resolved_settings

DEV_TENANT = "dev"


def run_dev(port: int | None) -> int:
    """Serve until SIGINT or SIGTERM, then stop every process and the embedded Redis; 1 if one died early."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    services: list[Service] = []
    with resolved_settings(own_redis=True) as settings:
        try:
            upgrade_database(settings.resolved_database_url)
            logs = settings.data_root / "logs"
            api, base_url = start_api(logs, port)
            services += [api, start_worker(logs), start_dispatcher(logs)]
            with transaction(settings.resolved_database_url) as session:
                key = create_key(session, DEV_TENANT, "tuneq dev").secret
            typer.echo(f"API {base_url}  (dashboard {base_url}/dashboard/, docs {base_url}/docs)")
            typer.echo(f"database {settings.resolved_database_url}  redis {settings.redis_url}")
            typer.echo(f"logs {logs}; Ctrl-C stops everything")
            typer.echo(f"export TUNEQ_API_URL={base_url} TUNEQ_API_KEY={key}")
            while not stop.wait(0.5):
                dead = [service for service in services if service.process.poll() is not None]
                if dead:
                    typer.echo(f"{dead[0].name} exited:\n{dead[0].log_tail()}", err=True)
                    return 1
            return 0
        finally:
            for service in reversed(services):
                service.stop()
