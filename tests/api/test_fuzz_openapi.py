"""Schemathesis fuzzes the running, authenticated API from its own OpenAPI document.

Bounded and seeded, so it is deterministic: every response must be a non-5xx
status that the document lists, with a body matching its documented schema.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from tests.conftest import ONE_AT_A_TIME, serve

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"
BOUNDS = ["--max-examples", "12", "--seed", "20261123", "--generation-deterministic", "--workers", "1"]
PHASES = ["--phases", "examples,coverage,fuzzing", "--max-response-time", "30"]


@pytest.mark.slow
@ONE_AT_A_TIME
def test_fuzzing_the_openapi_document_finds_no_5xx_and_no_undocumented_response(
    settings: Settings, api_key: str
) -> None:
    st = Path(sys.executable).with_name("st")
    with serve(settings) as url:
        run = subprocess.run(
            [
                str(st),
                "run",
                f"{url}/openapi.json",
                "-H",
                f"Authorization: Bearer {api_key}",
                "-c",
                CHECKS,
                *BOUNDS,
                *PHASES,
            ],
            capture_output=True,
            text=True,
            timeout=420,
        )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
