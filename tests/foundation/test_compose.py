"""No Docker engine runs here, so the compose file is checked statically: every service's command
must name a module, entry point and settings file that exist in this tree."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APP_SERVICES = {"web", "worker", "worker-gpu", "beat"}


def _module_file(dotted: str) -> Path | None:
    for source_root in (ROOT, ROOT / "platform"):
        candidate = source_root.joinpath(*dotted.split("."))
        for path in (candidate.with_suffix(".py"), candidate / "__init__.py", candidate / "__main__.py"):
            if path.exists():
                return path
    return None


def _command(service: str) -> str:
    command = COMPOSE["services"][service]["command"]
    return command if isinstance(command, str) else " ".join(command)


def test_the_compose_file_has_every_service_with_a_health_check():
    services = COMPOSE["services"]
    assert APP_SERVICES | {"postgres", "redis"} <= set(services)
    for name in APP_SERVICES | {"postgres", "redis"}:
        assert "healthcheck" in services[name], name


def test_every_app_service_names_a_real_settings_file():
    for name in APP_SERVICES:
        settings_module = COMPOSE["services"][name]["environment"]["DJANGO_SETTINGS_MODULE"]
        assert _module_file(settings_module), f"{name}: {settings_module} does not exist"


def test_every_app_service_command_names_real_modules():
    for name in APP_SERVICES:
        command = _command(name)
        modules = re.findall(r"-A\s+([\w.]+)", command) + re.findall(r"python -m\s+([\w.]+)", command)
        modules += [m.split(":")[0] for m in re.findall(r"gunicorn\s+([\w.:]+)", command)]
        assert modules, f"{name}: no module found in {command!r}"
        for module in modules:
            assert _module_file(module), f"{name}: {module} does not exist"
        if "manage.py" in command:
            assert (ROOT / "manage.py").exists()


def test_the_gpu_worker_takes_one_job_per_gpu_with_a_device_reservation():
    gpu = COMPOSE["services"]["worker-gpu"]
    assert "--concurrency 1" in _command("worker-gpu") or "gpu_launcher" in _command("worker-gpu")
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_database_and_media_live_on_named_volumes():
    assert {"pgdata", "media"} <= set(COMPOSE["volumes"])
    assert any(v.startswith("pgdata:") for v in COMPOSE["services"]["postgres"]["volumes"])
    assert any(v.startswith("media:") for v in COMPOSE["services"]["web"]["volumes"])


# Programs a slim Python image lacks, by the Debian package that brings them.
DEBIAN_PACKAGE_OF = {"curl": "curl", "pgrep": "procps", "pkill": "procps", "ps": "procps", "wget": "wget"}
FROM_PIP = {"python", "celery", "gunicorn"}


def test_every_app_health_check_runs_a_program_the_image_has():
    apt_line = next(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if "apt-get install" in line
    )
    for name in APP_SERVICES:
        test = COMPOSE["services"][name]["healthcheck"]["test"]
        program = test[1] if test[0] == "CMD" else test[1].split()[0]
        assert program in FROM_PIP or DEBIAN_PACKAGE_OF.get(program, "?") in apt_line.split(), (name, program)
