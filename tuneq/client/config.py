"""Where the CLI finds the API: flags, then TUNEQ_API_URL / TUNEQ_API_KEY, then the file `tuneq login` wrote."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

DEFAULT_API_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class ClientConfig:
    api_url: str = DEFAULT_API_URL
    api_key: str | None = None


def config_path() -> Path:
    """The user's config file (``$XDG_CONFIG_HOME/tuneq/config.json`` on Linux)."""
    return Path(typer.get_app_dir("tuneq")) / "config.json"


def load_config() -> ClientConfig:
    path = config_path()
    if not path.is_file():
        return ClientConfig()
    stored = json.loads(path.read_text())
    return ClientConfig(api_url=stored.get("api_url") or DEFAULT_API_URL, api_key=stored.get("api_key"))


def save_config(config: ClientConfig) -> Path:
    """Write the config readable by its owner only (it holds an API key)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(asdict(config), handle, indent=2)
    path.chmod(0o600)  # also when the file existed with wider permissions
    return path


def resolve(api_url: str | None, api_key: str | None) -> ClientConfig:
    """Flags and environment (both arrive here through typer) win over the saved config."""
    saved = load_config()
    return ClientConfig(api_url=api_url or saved.api_url, api_key=api_key or saved.api_key)
