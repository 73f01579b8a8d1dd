"""The body of `tuneq submit`: a YAML/JSON spec file, overridden by flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tuneq.client.http import ApiError


def read_spec(path: Path) -> dict[str, Any]:
    """A fine-tune request as in POST /finetune (``base_model``, ``training_file``, ``hyperparameters``, …)."""
    try:
        text = path.read_text()
        spec = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ApiError(f"cannot read the spec file {path}: {exc}") from exc
    if not isinstance(spec, dict):
        raise ApiError(f"the spec file {path} must hold a mapping like the body of POST /finetune")
    return spec


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs; values are read as YAML scalars (3 -> int, 2e-4 -> float, true -> bool)."""
    values: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise ApiError(f"--set {assignment!r}: write it as NAME=VALUE, e.g. --set warmup_ratio=0.1")
        values[key.strip()] = yaml.safe_load(raw) if raw else raw
    return values


def build_request(
    spec: dict[str, Any], fields: dict[str, Any], hyperparameters: dict[str, Any], metadata: dict[str, Any]
) -> dict[str, Any]:
    """The spec with every flag that was given laid over it."""
    body = {**spec, **{key: value for key, value in fields.items() if value is not None}}
    given = {key: value for key, value in hyperparameters.items() if value is not None}
    body["hyperparameters"] = {**(spec.get("hyperparameters") or {}), **given}
    if metadata:
        body["metadata"] = {**(spec.get("metadata") or {}), **metadata}
    if not body.get("base_model"):
        raise ApiError("no base model: pass --model (a hub id or a model directory) or base_model in --spec")
    if not body.get("training_file"):
        raise ApiError("no training data: pass --training-file (a file id or a local JSONL) or training_file in --spec")
    return body
