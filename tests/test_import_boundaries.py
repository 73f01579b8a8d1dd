"""The layering promises: the API never imports torch; the trainer never imports HTTP, SQL or Redis."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN_PACKAGES = ("api", "core", "worker", "trainer", "tuneq")


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def _imported_names(package: str) -> set[str]:
    names: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
    return names


def test_api_does_not_import_torch() -> None:
    loaded = _modules_after_import("api.main")
    assert "torch" not in loaded and "transformers" not in loaded


def test_trainer_imports_no_http_sql_queue_or_service_code() -> None:
    imported = _imported_names("trainer")
    forbidden = ("fastapi", "starlette", "sqlalchemy", "redis", "rq", "httpx", "api", "worker", "tuneq")
    assert not {name for name in imported if name.split(".")[0] in forbidden}
    # From the shared package only the pure dataset-format rules, which the API applies at upload time.
    assert {name for name in imported if name.split(".")[0] == "core"} <= {"core.dataset_formats"}
    own_loaded = {m for m in _modules_after_import("trainer.train") if m.split(".")[0] in OWN_PACKAGES}
    assert {m.split(".")[0] for m in own_loaded} <= {"trainer", "core"}
    assert {m for m in own_loaded if m.startswith("core.")} == {"core.dataset_formats"}
