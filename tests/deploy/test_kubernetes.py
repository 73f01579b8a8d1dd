"""The Kubernetes manifests are valid against Kubernetes' own schemas and keep tuneq's promises.

Validation uses kubernetes-validate (the JSON schemas of each Kubernetes release,
shipped in the package, strict: unknown fields are errors); kubeconform is not
available from the registries this project installs from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.deploy.manifests import tuneq_commands, unknown_variables

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _by_kind(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name)


def _containers() -> list[dict[str, Any]]:
    pods = [d["spec"]["template"]["spec"] for d in _documents() if d["kind"] in ("Deployment", "Job", "StatefulSet")]
    return [c for pod in pods for c in pod["containers"]]


@pytest.mark.parametrize("doc", _documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, latest_version(), strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_worker_takes_one_gpu_and_has_time_to_checkpoint_before_it_is_killed() -> None:
    pod = _by_kind("Deployment", "tuneq-worker")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    graceful = float(_by_kind("ConfigMap", "tuneq-config")["data"]["TUNEQ_GRACEFUL_STOP_SECONDS"])
    # the worker's own fallback kill comes at graceful + 10 s; Kubernetes' SIGKILL must come after it
    assert pod["terminationGracePeriodSeconds"] > graceful + 10


def test_api_probes_use_separate_liveness_and_readiness_endpoints_that_answer(client: httpx.Client) -> None:
    deployment = _by_kind("Deployment", "tuneq-api")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    liveness = container["livenessProbe"]["httpGet"]["path"]
    readiness = container["readinessProbe"]["httpGet"]["path"]
    assert liveness != readiness
    scraped = deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
    for path in (liveness, readiness, scraped):
        assert client.get(path).status_code == 200, path


def test_api_does_not_migrate_and_a_job_does() -> None:
    assert _by_kind("ConfigMap", "tuneq-config")["data"]["TUNEQ_AUTO_MIGRATE"] == "false"
    (container,) = _by_kind("Job", "tuneq-migrate")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["tuneq", "migrate"]


def test_data_root_is_one_shared_read_write_many_volume() -> None:
    claim = _by_kind("PersistentVolumeClaim", "tuneq-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_every_variable_is_a_setting_and_every_command_exists() -> None:
    names = set(_by_kind("ConfigMap", "tuneq-config")["data"]) | set(_by_kind("Secret", "tuneq-secrets")["stringData"])
    for container in _containers():
        names |= {env["name"] for env in container.get("env", [])}
        assert container["command"][0] == "tuneq" and container["command"][1] in tuneq_commands()
    assert unknown_variables(names) == set()
