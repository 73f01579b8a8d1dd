"""Fixtures of the client command tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cli_env(api_url: str, api_key: str, tmp_path: Path) -> dict[str, str]:
    return {"TUNEQ_API_URL": api_url, "TUNEQ_API_KEY": api_key, "XDG_CONFIG_HOME": str(tmp_path / "config")}
