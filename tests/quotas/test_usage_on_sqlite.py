"""The metering sink on the embedded default's SQLite (what `make dev` runs), not only PostgreSQL:
a flushed minute lands in the minute, hour and day aggregates, a second minute adds to the same hour
and day, and a replayed flush id changes nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", "serving", verbosity=0)
from serving.metering import UsageRow
from serving.models import UsageAggregate
from serving.usage import usage_sink

def row(requests):
    buckets = [0] * 3
    buckets[1] = requests
    return UsageRow(team_id="team-1", endpoint_id="support", key_id="k1", version_id="mv-1",
                    requests=requests, errors=1, input_tokens=10 * requests, latency_ms_sum=5 * requests,
                    latency_buckets=buckets)

assert usage_sink("m1:a", 1_700_000_040, [row(3)]) is True
assert usage_sink("m2:b", 1_700_000_100, [row(4)]) is True
assert usage_sink("m1:a", 1_700_000_040, [row(3)]) is False
for granularity, expected in (("minute", [3, 4]), ("hour", [7]), ("day", [7])):
    rows = UsageAggregate.objects.filter(granularity=granularity).order_by("bucket_start")
    assert [r.requests for r in rows] == expected, (granularity, [r.requests for r in rows])
hour = UsageAggregate.objects.get(granularity="hour")
assert hour.latency_buckets[1] == 7 and hour.input_tokens == 70 and hour.errors == 2
print("ok")
"""


@pytest.mark.slow
def test_the_usage_sink_works_on_the_embedded_sqlite(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "TUNEFORGE_VAR_DIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
