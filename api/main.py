"""The HTTP front end: validates requests, writes the database, enqueues job ids."""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.body_limit import BodySizeLimit
from api.errors import install_error_handlers
from api.idempotency import IdempotencyKeys
from api.load_shedding import install_load_shedding
from api.metrics import install_metrics
from api.routes import dashboard, files, finetune, health, stream, v1, webhooks
from core.metrics.exposition import api_registry
from core.migrate import upgrade_database
from core.queue import connect_redis, job_queue
from core.recovery import recovery_loop
from core.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            upgrade_database(settings.resolved_database_url)
        redis = connect_redis(settings)
        app.state.settings = settings
        app.state.redis = redis
        app.state.queue = job_queue(redis, settings)
        app.state.metrics_registry = api_registry(settings)
        stop = threading.Event()
        if settings.run_maintenance_in_api:
            threading.Thread(
                target=recovery_loop, args=(settings, app.state.queue, stop), name="recovery", daemon=True
            ).start()
        # The objects of start-up (modules, routes, schemas: ~150,000) live as long as the process. Frozen,
        # the collector stops walking them: a full collection took 83 ms, a pause in whatever request ran.
        gc.freeze()
        yield
        stop.set()
        redis.close()

    app = FastAPI(title="tuneq", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    install_metrics(app)
    # Outermost last: the size cap applies before an idempotent request's body is spooled.
    app.add_middleware(IdempotencyKeys, settings=settings)
    app.add_middleware(BodySizeLimit, settings=settings)
    install_load_shedding(app, settings)  # outermost: sheds load before any work is done
    app.include_router(health.router)
    app.include_router(files.router)
    app.include_router(finetune.router)
    app.include_router(webhooks.router)
    app.include_router(v1.router)
    app.include_router(stream.router)
    app.include_router(dashboard.router)
    return app
