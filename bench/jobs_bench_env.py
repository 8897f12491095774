"""Shared setup of the jobs benchmarks: a throwaway PostgreSQL database, Redis databases, a scratch
folder, Django, and a team with a tiny base model and a dataset version.

Environment (defaults in brackets): BENCH_DATABASE_NAME [tuneforge_bench], BENCH_PG [postgres://postgres@127.0.0.1:5432],
BENCH_REDIS_URL [redis://127.0.0.1:6379/12], BENCH_BROKER_URL [redis://127.0.0.1:6379/13]. The database is
dropped and re-created on every run.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_django() -> Path:
    """Create the bench database, point Django at it, migrate; returns the scratch folder."""
    for source_root in (ROOT, ROOT / "platform"):
        if str(source_root) not in sys.path:
            sys.path.insert(0, str(source_root))
    name = os.environ.get("BENCH_DATABASE_NAME", "tuneforge_bench")
    server = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    scratch = Path(tempfile.mkdtemp(prefix="tuneforge-bench-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": f"{server}/{name}",
            "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
            "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13"),
            "TUNEFORGE_TEST_DIR": str(scratch),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return scratch


def team_with_model_and_data(
    scratch: Path,
    *,
    hidden_size: int = 64,
    layers: int = 2,
    n_train: int = 80,
    n_valid: int = 16,
    repeat: int = 1,
):
    """(team, owner, base model, dataset version), all real rows; the model is built in `scratch`."""
    from accounts.models import Membership, Team, User
    from finetune.models import BaseModel
    from tests.jobs.tiny import build_tiny_bert, make_dataset_version

    user = User.objects.create_user(email="bench@example.com", password="bench-password-123")
    team = Team.objects.create(name="Bench", slug="bench", max_concurrent_jobs=1000, monthly_gpu_hours=1000)
    Membership.objects.create(team=team, user=user, role="owner")
    model_dir = build_tiny_bert(scratch / "model", hidden_size=hidden_size, layers=layers)
    base_model = BaseModel.objects.create(
        name="bench-bert",
        display_name="Bench BERT",
        source=str(model_dir),
        kind="encoder",
        tasks=["classification"],
        is_default=True,
        parameters_millions=None,
    )
    version = make_dataset_version(team, n_train=n_train, n_valid=n_valid, repeat=repeat)
    return team, user, base_model, version


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
