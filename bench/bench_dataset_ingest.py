"""Dataset ingestion throughput and memory, against a bare `csv.reader` pass over the same file.

Generates a 1,000,000-row classification CSV (~110 MB, 40 labels, 0.5% texts long enough to be
tokenized, some duplicates) in a temporary folder, then in separate child processes (so neither
run's memory mixes into the other's):
  bare — one `csv.reader` pass that only counts rows: the floor any CSV ingestion pays;
  ours — the upload path itself: `datasets_app.services.dataset_create_from_upload` (sniff, stream,
         validate, normalize, token-length check with the default model's tokenizer, duplicates,
         stratified split, sha256, copy into storage, DatasetVersion row), on a throwaway SQLite
         database and media folder (DJANGO_SETTINGS_MODULE=config.settings.local, temp VAR_DIR).

Prints `BENCH dataset_ingest ratio=<ours/bare time> target<=8 rows_per_s=... peak_rss_mb=...`.
Why 8: per row the upload does what the bare pass does, plus strip/validate both fields, JSON-encode
and write the normalized row, three 64-bit digests, and a second sequential pass for the split and
sha256 — about 5-6 C-level operations per row on top of the parse, so ~5-7× the floor is what a lean
pure-Python loop over the csv module can reach; 8 leaves room for machine noise.
Absolute targets: >= 100,000 rows/s and peak RSS <= 300 MB (whole child process, Django included).
"""

from __future__ import annotations

import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = int(os.environ.get("BENCH_DATASET_ROWS", "1000000"))
TARGET_RATIO = 8.0
TARGET_ROWS_PER_S = 100_000
TARGET_PEAK_MB = 300

WORDS = (
    "account balance transfer card payment refund exchange rate top up cash withdrawal pending declined "
    "fee charged app virtual physical lost stolen pin verify identity limit country currency transaction "
    "statement merchant contactless abroad salary direct debit cheque deposit"
).split()


def generate(path: Path, rows: int) -> None:
    rng = random.Random(0)
    labels = [f"intent_{i:02d}" for i in range(40)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        previous = []
        for i in range(rows):
            if i % 997 == 0 and previous:
                writer.writerow(previous)  # an exact duplicate now and then
                continue
            n = rng.randint(120, 160) if i % 200 == 0 else rng.randint(8, 22)
            text = " ".join(rng.choice(WORDS) for _ in range(n))
            if i % 7 == 0:
                text += ", please help"
            previous = [text, labels[min(int(rng.expovariate(0.15)), 39)]]
            writer.writerow(previous)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_bare(path: str) -> dict:
    start = time.perf_counter()
    with open(path, newline="", encoding="utf-8") as fh:
        count = sum(1 for _ in csv.reader(fh)) - 1
    return {"seconds": time.perf_counter() - start, "rows": count, "peak_rss_mb": peak_rss_mb()}


def child_ours(path: str) -> dict:
    sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
    import django

    django.setup()
    from django.core.files import File

    from accounts.models import Team, User
    from datasets_app import services

    team = Team.objects.create(name="Bench", slug="bench")
    user = User.objects.create_user("bench@example.com", "bench-password-123")
    before = peak_rss_mb()
    start = time.perf_counter()
    with open(path, "rb") as fh:
        outcome = services.dataset_create_from_upload(
            team=team,
            user=user,
            file=File(fh, name="bench.csv"),
            filename="bench.csv",
            name="bench",
            options=services.UploadOptions(),
        )
    seconds = time.perf_counter() - start
    version = outcome.version
    return {
        "seconds": seconds,
        "rows": version.row_count
        + version.validation_row_count
        + version.report["stats"]["duplicates_removed"],
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": before,
        "warnings": [w["code"] for w in version.report["warnings"]],
        "too_long": version.report["stats"]["tokens"],
    }


def run_child(kind: str, path: Path, env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{kind} run failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        tmp_path = Path(tmp)
        data = tmp_path / "bench.csv"
        generate(data, ROWS)
        size_mb = data.stat().st_size / 1e6
        env = {
            k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
        }
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.local",
            TUNEFORGE_VAR_DIR=str(tmp_path / "var"),
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            DEBUG="false",
        )
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)
        bare = run_child("bare", data, env)
        ours = run_child("ours", data, env)
    ratio = ours["seconds"] / bare["seconds"]
    rows_per_s = ROWS / ours["seconds"]
    print(f"file: {ROWS:,} rows, {size_mb:.0f} MB")
    print(
        f"bare csv.reader: {bare['seconds']:.2f} s, {ROWS / bare['seconds']:,.0f} rows/s, "
        f"peak RSS {bare['peak_rss_mb']:.0f} MB"
    )
    print(
        f"upload path:     {ours['seconds']:.2f} s, {rows_per_s:,.0f} rows/s, peak RSS {ours['peak_rss_mb']:.0f} MB "
        f"(process before the upload: {ours['rss_before_mb']:.0f} MB); warnings: {', '.join(ours['warnings'])}; "
        f"tokens: {ours['too_long']}"
    )
    ok = ratio <= TARGET_RATIO and rows_per_s >= TARGET_ROWS_PER_S and ours["peak_rss_mb"] <= TARGET_PEAK_MB
    print(
        f"BENCH dataset_ingest ratio={ratio:.2f} target<={TARGET_RATIO:g} rows_per_s={rows_per_s:.0f} "
        f"peak_rss_mb={ours['peak_rss_mb']:.0f} bare_rows_per_s={ROWS / bare['seconds']:.0f} "
        f"targets_met={'yes' if ok else 'no'}"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        result = child_bare(sys.argv[3]) if sys.argv[2] == "bare" else child_ours(sys.argv[3])
        print(json.dumps(result))
        sys.exit(0)
    sys.exit(main())
