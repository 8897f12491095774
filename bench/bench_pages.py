"""Server time of the list pages with a lot of data: 1,000 jobs of one team, 1,000 metric points
per job, 100 model versions and endpoints. Each page is rendered in-process (Django's test client:
the whole request, middleware, queries and template, without a network) and timed as the median
of several requests after one warm-up.

Prints, per page, `BENCH page_<name> ratio=<median/300 ms> target<=1.0 ms=<median>
vs_10_jobs=<median / the same page's median with 10 jobs>` (the baseline is measured in this run).

Environment: BENCH_PAGES_JOBS [1000], BENCH_PAGES_POINTS [1000], BENCH_PAGES_REPEAT [7], and the
database/Redis variables of jobs_bench_env.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jobs_bench_env import setup_django, team_with_model_and_data  # noqa: E402

TARGET_MS = 300.0
JOBS = int(os.environ.get("BENCH_PAGES_JOBS", "1000"))
POINTS = int(os.environ.get("BENCH_PAGES_POINTS", "1000"))
REPEAT = int(os.environ.get("BENCH_PAGES_REPEAT", "7"))
PAGES = {
    "dashboard": ("owner", "/"),
    "jobs": ("owner", "/jobs/"),
    "models": ("owner", "/jobs/models/"),
    "datasets": ("owner", "/datasets/"),
    "endpoints": ("owner", "/endpoints/"),
    "staff_jobs": ("staff", "/staff/jobs/"),
}


def _median_ms(client, url: str) -> float:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, url
    return statistics.median(times)


def _measure(clients) -> dict[str, float]:
    return {name: _median_ms(clients[who], url) for name, (who, url) in PAGES.items()}


def _add_endpoints(team, limit: int) -> None:
    from finetune.models import ModelVersion
    from serving.models import Endpoint

    served = set(Endpoint.objects.values_list("model_version_id", flat=True))
    start = Endpoint.objects.count()
    for i, version in enumerate(ModelVersion.objects.filter(team=team).exclude(pk__in=served)[:limit]):
        Endpoint.objects.create(team=team, slug=f"bench-{start + i}", model_version=version, status="live")


def main() -> int:
    scratch = setup_django()
    from django.test import Client

    from accounts.models import User
    from tests.pages.conftest import many_jobs

    team, owner, base_model, version = team_with_model_and_data(scratch)
    staff = User.objects.create_user(email="staff@example.com", password="bench-password-123", is_staff=True)
    clients = {"owner": Client(), "staff": Client()}
    clients["owner"].force_login(owner)
    clients["staff"].force_login(staff)

    many_jobs(team, version, base_model, count=10, points=POINTS)
    _add_endpoints(team, 1)
    small = _measure(clients)
    many_jobs(team, version, base_model, count=JOBS - 10, points=POINTS)
    _add_endpoints(team, 99)
    large = _measure(clients)

    worst = 0.0
    for name, ms in large.items():
        ratio = ms / TARGET_MS
        worst = max(worst, ratio)
        print(
            f"BENCH page_{name} ratio={ratio:.3f} target<=1.0 ms={ms:.1f} "
            f"vs_10_jobs={ms / small[name]:.2f} jobs={JOBS} points_per_job={POINTS}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
