"""Queue depth read from Redis at scrape time."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from core.metrics.database import dependency_up

log = logging.getLogger(__name__)


class QueueCollector(Collector):
    def __init__(self, redis_url: str, queue_name: str, timeout_seconds: float) -> None:
        # A client of its own with timeouts: a hung Redis must not hang the scrape.
        self.redis = Redis.from_url(redis_url, socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds)
        self.queue_name = queue_name

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            depth = Queue(self.queue_name, connection=self.redis).count
        except RedisError as exc:
            log.warning("metrics: redis unreadable: %s", exc)
            yield dependency_up("redis", False)
            return
        yield dependency_up("redis", True)
        family = GaugeMetricFamily("tuneq_queue_depth", "Wake-up messages waiting in the Redis queue")
        family.add_metric([], depth)
        yield family
