"""The ``tuneq`` command. Imports are inside the commands so ``tuneq worker``
can pin its GPU before anything imports torch."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from tuneq.client.commands import register as register_client_commands

app = typer.Typer(help="tuneq: a queue-backed LoRA/QLoRA fine-tuning service.", no_args_is_help=True)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="interface to bind (default: settings)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: settings)")] = None,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from core.metrics.multiprocess import use_multiprocess_dir
    from tuneq.runtime import resolved_settings

    with resolved_settings(own_redis=True) as settings:
        use_multiprocess_dir(settings)  # before anything imports prometheus_client
        from api.main import create_app
        from api.serving import server_options, worker_listeners

        bind = host or settings.api_host
        try:
            settings.check_bind(bind)
        except ValueError as exc:
            typer.echo(f"refusing to start: {exc}", err=True)
            raise typer.Exit(2) from exc
        port = port or settings.api_port
        if settings.api_workers == 1:
            uvicorn.run(create_app(settings), host=bind, port=port, **server_options(settings))
            return
        from uvicorn.supervisors import Multiprocess

        # Several workers build their apps from the TUNEQ_* variables resolved_settings exported.
        config = uvicorn.Config(
            "api.main:create_app",
            factory=True,
            workers=settings.api_workers,
            host=bind,
            port=port,
            **server_options(settings),
        )
        sockets, held = worker_listeners(config)
        with held:
            Multiprocess(config, sockets=sockets).run()


@app.command()
def worker(
    gpu: Annotated[int | None, typer.Option(help="GPU index to pin to; omit for a CPU-only worker")] = None,
    host_gpus: Annotated[
        str | None,
        typer.Option(
            help="comma-separated GPUs of this host whose workers lend each other GPUs for multi-GPU jobs "
            "(`tuneq workers` passes them; default: only --gpu)"
        ),
    ] = None,
    burst: Annotated[bool, typer.Option(help="exit when the queue is empty")] = False,
) -> None:
    """Run one worker pinned to one GPU (an RQ worker underneath)."""
    from worker.process import pin_device, run_worker

    pin_device(gpu)  # before resolved_settings: nothing below may initialise CUDA first
    from tuneq.runtime import resolved_settings

    shared = _gpu_list(host_gpus)
    if gpu is not None and shared is not None and gpu not in shared:
        typer.echo(f"refusing to start: --gpu {gpu} is not among --host-gpus {host_gpus}", err=True)
        raise typer.Exit(2)
    with resolved_settings(own_redis=False) as settings:
        run_worker(settings, gpu, burst=burst, host_gpus=shared)


def _gpu_list(listed: str | None) -> list[int] | None:
    return [int(part) for part in listed.split(",")] if listed else None


@app.command()
def workers(
    gpus: Annotated[str | None, typer.Option(help="comma-separated GPU indices (default: every visible GPU)")] = None,
) -> None:
    """Run one pinned worker per GPU and restart any that dies; they lend each other GPUs for multi-GPU jobs."""
    from tuneq.runtime import resolved_settings
    from worker.fleet import run_fleet

    with resolved_settings(own_redis=False):
        run_fleet(_gpu_list(gpus))


@app.command()
def maintenance() -> None:
    """Run the reaper and queue reconciler in the foreground (the API also runs them by default)."""
    import threading

    from core.queue import connect_redis, job_queue
    from core.recovery import recovery_loop
    from tuneq.runtime import resolved_settings

    with resolved_settings(own_redis=False) as settings:
        recovery_loop(settings, job_queue(connect_redis(settings), settings), threading.Event())


@app.command()
def dispatcher() -> None:
    """Send webhooks: claim due deliveries from the outbox and POST them (run one or more, anywhere)."""
    import signal
    import threading

    from core.metrics.multiprocess import use_multiprocess_dir
    from core.settings import get_settings

    settings = get_settings()
    use_multiprocess_dir(settings)  # before anything imports prometheus_client
    from prometheus_client import start_http_server

    from core.metrics.exposition import worker_registry
    from core.webhook_dispatcher import Dispatcher

    if settings.metrics_port is not None:  # delivery counters, scraped like a worker's
        start_http_server(settings.metrics_port, registry=worker_registry(settings, [], "dispatcher"))
    stop = threading.Event()
    # SIGTERM finishes the attempts in flight, then exits; anything unsent stays in the outbox.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Only the database is needed: no Redis, no data root, no GPU.
    Dispatcher(settings).run(stop)


@app.command()
def migrate() -> None:
    """Bring the database schema to the newest version."""
    from core.migrate import upgrade_database
    from core.settings import get_settings

    upgrade_database(get_settings().resolved_database_url)


keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="the tenant the key acts for, e.g. acme")],
    name: Annotated[str | None, typer.Option(help="a label, e.g. ci")] = None,
) -> None:
    """Create an API key and print it; only its hash is kept, so it cannot be shown again."""
    from core.api_keys import create_key
    from core.db import transaction
    from core.migrate import upgrade_database
    from core.settings import get_settings

    settings = get_settings()
    if settings.auto_migrate:
        upgrade_database(settings.resolved_database_url)
    with transaction(settings.resolved_database_url) as session:
        created = create_key(session, tenant, name)
        typer.echo(f"{created.secret}")
        typer.echo(f"key id {created.record.id} for tenant {tenant}; store it now, it is not shown again", err=True)


@keys_app.command("list")
def keys_list(tenant: Annotated[str | None, typer.Option(help="only this tenant's keys")] = None) -> None:
    """List keys (ids, tenants, names, prefixes; never the keys themselves)."""
    from core.api_keys import list_keys
    from core.db import transaction
    from core.settings import get_settings

    with transaction(get_settings().resolved_database_url) as session:
        for key in list_keys(session, tenant):
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            typer.echo(f"{key.id}  {key.tenant}  {key.name or '-'}  {key.prefix}…  {state}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id (key-…), from tuneq keys list")]) -> None:
    """Revoke a key; requests with it are refused from now on."""
    from core.api_keys import revoke_key
    from core.db import transaction
    from core.errors import NotFound
    from core.settings import get_settings

    try:
        with transaction(get_settings().resolved_database_url) as session:
            revoke_key(session, key_id)
    except NotFound as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"revoked {key_id}")


@app.command("make-tiny-model")
def make_tiny_model(directory: Path) -> None:
    """Build a tiny random-init Qwen3 model with a locally trained tokenizer (no downloads)."""
    from trainer.tiny_model import make_tiny_model as build

    typer.echo(build(directory))


@app.command("make-sample-data")
def make_sample_data(path: Path) -> None:
    """Write the sample chat dataset (country -> capital) as JSONL."""
    from trainer.sample_data import write_sample_dataset

    typer.echo(write_sample_dataset(path))


@app.command()
def demo(
    data_root: Annotated[Path, typer.Option(help="scratch directory, wiped first")] = Path(".tuneq-demo"),
) -> None:
    """Fine-tune a tiny local model end to end through the API, the queue and a worker."""
    from tuneq.demo import run_demo

    raise typer.Exit(run_demo(data_root))


@app.command()
def dev(
    port: Annotated[int | None, typer.Option(help="API port (default: a free one)")] = None,
) -> None:
    """API + one worker + embedded SQLite and Redis in one command; Ctrl-C stops them all."""
    from tuneq.dev import run_dev

    raise typer.Exit(run_dev(port))


register_client_commands(app)


def main() -> None:
    from core.logs import configure_logging
    from core.settings import get_settings

    configure_logging(get_settings())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll drowns the progress
    app()
