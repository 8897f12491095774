"""`platform/` is a source root: the `platform` module every process loads must stay the stdlib's
(a package there would break `import torch` at run time, and plain pytest would hide it)."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def _is_stdlib(path: str) -> bool:
    return Path(path).resolve().parent == STDLIB


def test_the_platform_source_root_is_not_a_package():
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_pytest_loads_the_standard_library_platform_module():
    import platform

    assert _is_stdlib(platform.__file__)
    assert platform.python_version()  # the stdlib API, not our folder


def test_the_django_process_loads_the_standard_library_platform_module():
    code = (
        "import django, os; django.setup(); import platform, torch; "
        "print(platform.__file__); print(torch.__version__)"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    platform_file, torch_version = out.stdout.split()
    assert _is_stdlib(platform_file)
    assert torch_version.startswith("2.13.0")


def test_the_celery_worker_loads_the_standard_library_platform_module():
    # The worker's entry point (`celery -A workers.celery_app`) imports the app module first.
    code = "import workers.celery_app, django; django.setup(); import platform; print(platform.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert _is_stdlib(out.stdout.strip())
