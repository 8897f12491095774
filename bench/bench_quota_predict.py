"""Predict with quotas vs without, on a real endpoint (MiniLM-L6 classifier), side by side in one run.

The same native `POST /api/v1/endpoints/{slug}/predict` (in-process DRF client, a real API key, the
real runtime) is called in alternation:
  - with quotas: the team has a policy (per-key requests and tokens per minute, a monthly team quota,
    a per-endpoint limit: 3 limits, 5 counters) and the view runs `serving.usage_gate` as shipped:
    one Redis round trip for the check (the limits read from the policy copy in Redis, no query;
    the key's brake and access stamp read in the same script), the settle and metering script sent
    without waiting, the Prometheus counters;
  - without: the same view with the gate replaced by one that does nothing (no policy read, no
    quota script, no metering) - what predict costs with no quota machinery at all. The key's
    brake and stamp are then read by their own MGET before the answer (`ConfirmsAccessLater`), as
    authentication did before the check carried them.
Alternating call by call gives both the same machine load.

Prints `BENCH quota_predict ratio=<throughput with / without> target>=0.95 added_p50_ms=<..>
target_added_p50_ms<=1.0 ...`.
Needs PostgreSQL and Redis (bench/jobs_bench_env.py; BENCH_DATABASE_NAME defaults to
tuneforge_bench_quota here). Run: `.venv/bin/python bench/bench_quota_predict.py`.
"""

from __future__ import annotations

import contextlib
import csv
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("BENCH_DATABASE_NAME", "tuneforge_bench_quota")
# One intra-op thread: the forward's time varies less on a shared machine, and the gate's cost is
# what is compared (both modes run the same forward).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from jobs_bench_env import setup_django, team_with_model_and_data  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_QUOTA_PREDICT_ROUNDS", "400"))
WARMUP = 30
TARGET_RATIO = 0.95
TARGET_ADDED_MS = 1.0


def texts() -> list[str]:
    path = HERE.parent / "samples" / "banking77" / "test_4intents.csv"
    with open(path, newline="", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


def build_classifier(scratch: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from finetune.engine.modeling import MINILM_ID, quiet_transformers, resolve_base_model

    base = resolve_base_model(MINILM_ID)
    labels = ["Refund_not_showing_up", "card_arrival", "exchange_rate", "lost_or_stolen_card"]
    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(
            base,
            num_labels=4,
            id2label=dict(enumerate(labels)),
            label2id={k: i for i, k in enumerate(labels)},
        )
    out = scratch / "minilm-classifier"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


class _NoGateCall:
    headers: dict = {}

    def used(self, **_kwargs) -> None:
        return None


@contextlib.contextmanager
def no_gate(**_kwargs):
    yield _NoGateCall()


def main() -> int:
    scratch = setup_django()
    from rest_framework.test import APIClient

    from accounts.apikeys import apikey_create
    from finetune.artifact_storage import storage_prefix_for_model_version, upload_dir
    from finetune.models import FineTuneJob, ModelVersion
    from serving import apis, quotas
    from serving.models import Endpoint, QuotaPolicy
    from serving.services import endpoint_create, endpoint_deploy
    from serving.usage_gate import usage_gate

    team, user, _base_model, dataset_version = team_with_model_and_data(scratch)
    client = APIClient()
    client.force_login(user)
    job = client.post(
        "/api/v1/jobs",
        {"dataset_version": dataset_version.id, "model": "bench-bert", "method": "full", "device_class": "cpu",
         "max_steps": 1},
        format="json",
    ).json()  # fmt: skip
    FineTuneJob.objects.filter(pk=job["id"]).update(status="succeeded")
    job = FineTuneJob.objects.get(pk=job["id"])
    version = ModelVersion.objects.create(
        team=team, name=f"ft:minilm:bench:q:{job.id}", job=job, base_model=job.base_model,
        task="classification", method="full", storage_prefix="", files=[],
    )  # fmt: skip
    version.storage_prefix = storage_prefix_for_model_version(team_id=team.id, version_id=version.id)
    version.files = upload_dir(build_classifier(scratch), version.storage_prefix)
    version.save()
    endpoint = endpoint_create(team=team, user=user, slug="bench", model_version_id=version.id)
    endpoint_deploy(endpoint_id=endpoint.id, version_id=version.id)
    assert Endpoint.objects.get(pk=endpoint.id).status == "ready"

    big = 10**9  # fits every column (requests per minute are 32-bit)
    QuotaPolicy.objects.create(
        team=team, requests_per_minute=big, tokens_per_minute=big, monthly_requests=big, monthly_tokens=big,
        endpoint_requests_per_minute=big,
    )  # fmt: skip
    api_key, raw = apikey_create(team=team, name="bench", scopes=["inference"], user=user)
    caller = APIClient()
    caller.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    sentences = texts()
    timings: dict[str, list[float]] = {"with": [], "without": []}
    redis_client = quotas.quota_client()
    try:
        for n in range(WARMUP + ROUNDS):
            text = sentences[n % len(sentences)]
            order = ("with", "without") if n % 2 == 0 else ("without", "with")
            for mode in order:
                apis.usage_gate = usage_gate if mode == "with" else no_gate
                started = time.perf_counter()
                response = caller.post("/api/v1/endpoints/bench/predict", {"input": text}, format="json")
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise SystemExit(
                        f"predict failed ({mode}): {response.status_code} {response.content[:300]!r}"
                    )
                if mode == "with" and "x-ratelimit-limit-requests" not in response:
                    raise SystemExit("the quota gate did not run: no x-ratelimit headers")
                if n >= WARMUP:
                    timings[mode].append(elapsed)
        # The gate alone (no model, no HTTP): its own cost, without the forward's noise around it.
        endpoint_row = Endpoint.objects.get(pk=endpoint.id)
        gate_alone = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            with usage_gate(team=team, api_key=api_key, endpoint=endpoint_row, reserve_tokens=1) as call:
                call.used(input_tokens=12, version=version.id)
            gate_alone.append(time.perf_counter() - started)
    finally:
        apis.usage_gate = usage_gate
        for pattern in ("tf:quota:*", "tf:meter:*"):
            keys = list(redis_client.scan_iter(match=pattern))
            if keys:
                redis_client.delete(*keys)
    p50 = {mode: statistics.median(values) * 1000 for mode, values in timings.items()}
    throughput = {mode: len(values) / sum(values) for mode, values in timings.items()}
    ratio = throughput["with"] / throughput["without"]
    added = p50["with"] - p50["without"]
    # The two calls of a round run back to back: their difference is the least disturbed by load drift.
    paired = (
        statistics.median(w - wo for w, wo in zip(timings["with"], timings["without"], strict=True)) * 1000
    )
    print(
        f"predict on MiniLM, {ROUNDS} calls each, alternating: with quotas p50 {p50['with']:.2f} ms, "
        f"{throughput['with']:.1f}/s; without p50 {p50['without']:.2f} ms, {throughput['without']:.1f}/s"
    )
    print(
        f"BENCH quota_predict ratio={ratio:.3f} target>={TARGET_RATIO} added_p50_ms={added:.3f} "
        f"paired_added_p50_ms={paired:.3f} gate_alone_p50_ms={statistics.median(gate_alone) * 1000:.3f} "
        f"target_added_p50_ms<={TARGET_ADDED_MS} with_p50_ms={p50['with']:.2f} without_p50_ms={p50['without']:.2f} "
        f"with_rps={throughput['with']:.1f} without_rps={throughput['without']:.1f} key={api_key.public_id}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
