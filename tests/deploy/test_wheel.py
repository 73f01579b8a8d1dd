"""The wheel is a complete install: ``pip install tuneq`` then ``tuneq migrate`` works from any directory.

The wheel is installed with ``--no-deps`` into a fresh virtual environment
whose only way to the dependencies is a path to this environment's
site-packages (reinstalling torch here would take minutes). That path is added
as a plain entry, so the editable install of the repository that lives there
is not activated: every tuneq module must come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from core.migrate import alembic_config

ROOT = Path(__file__).resolve().parents[2]
# Build outputs and local state that do not belong in a source tree handed to the build.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".tuneq*", "run"
)
# Not tokenizers: a small Rust wheel without torch, which the API needs to count tokens for cost estimates.
HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate", "datasets")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", base / "dist", source],
        check=True,
        capture_output=True,
    )
    (built,) = (base / "dist").glob("tuneq-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel installed; returns its bin directory."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # Without the caller's PYTHONPATH: a checkout on it (with its tuneq.egg-info) would make pip think
    # tuneq is already installed in the new venv and skip the wheel.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel],
        env=_clean_env(),
        check=True,
        capture_output=True,
    )
    own_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(own_site, "shared-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir / "bin"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TUNEQ_", "PYTHON"))}
    return {**env, **extra}


def test_wheel_carries_the_migrations_and_keeps_the_trainer_stack_optional(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert {"migrations/env.py", "migrations/script.py.mako", "migrations/versions/0001_initial_schema.py"} <= names
    requirements = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for package in HEAVY:
        for line in requirements:
            if line.split()[1].startswith(package):
                assert 'extra == "train"' in line, line


def test_installed_wheel_migrates_a_fresh_sqlite_database_from_any_directory(installed: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    database = tmp_path / "fresh.db"
    env = _clean_env(TUNEQ_DATABASE_URL=f"sqlite:///{database}", TUNEQ_DATA_ROOT=str(tmp_path / "data"))

    where = subprocess.run(
        [installed / "python", "-c", "import core.migrate as c, migrations as m; print(c.__file__, m.__file__)"],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    venv_root = installed.parent.resolve()
    assert all(Path(path).resolve().is_relative_to(venv_root) for path in where), where

    result = subprocess.run([installed / "tuneq", "migrate"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"jobs", "job_events", "job_metrics", "files", "workers"} <= tables
    assert version == ScriptDirectory.from_config(alembic_config(str(database))).get_current_head()
