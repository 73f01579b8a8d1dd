"""What the deploy tests check in every manifest: settings that exist and commands that exist."""

from __future__ import annotations

from core.settings import Settings
from tuneq.cli import app

# Variables tuneq's images read besides its own settings.
OTHER_VARIABLES = {"HF_HOME"}


def unknown_variables(names: set[str]) -> set[str]:
    """Names that would be silently ignored: a typo in TUNEQ_* is not an error for pydantic-settings."""
    known = {f"TUNEQ_{field.upper()}" for field in Settings.model_fields}
    return names - known - OTHER_VARIABLES


def tuneq_commands() -> set[str]:
    registered = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    return {name.replace("_", "-") for name in registered}
