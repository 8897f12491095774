"""The engine is a pure library: importing and using it pulls in no Django and no platform code."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.engine import tiny_models

ENGINE = tiny_models.REPO / "finetune" / "engine"
FORBIDDEN = (
    "django",
    "rest_framework",
    "celery",
    "platform",
    "serving",
    "workers",
    "finetune.models",
    "accounts",
    "datasets_app",
)


def test_engine_sources_import_nothing_from_django_or_the_platform():
    for path in ENGINE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN), (
                    f"{path.name} imports {name}"
                )


def test_importing_the_engine_loads_no_django():
    code = "import sys, finetune.engine; print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework', 'celery')))"
    env = {**os.environ, "PYTHONPATH": str(tiny_models.REPO)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tiny_models.REPO),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_finetune_package_init_stays_empty():
    # finetune/ is also a Django app; its __init__ must not import anything (the engine is imported alone by workers)
    init = Path(tiny_models.REPO / "finetune" / "__init__.py")
    assert init.read_text().strip() == ""
