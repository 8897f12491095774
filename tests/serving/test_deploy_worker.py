"""The deploy task run by a real Celery worker process, and a MiniLM model served end to end."""

from __future__ import annotations

import pytest

from finetune.engine.modeling import MINILM_ID
from tests.celery_harness import wait_until
from tests.serving.conftest import deploy, make_version

CARD_TEXT = "my card has not arrived yet"


@pytest.mark.slow
def test_a_real_worker_deploys_the_endpoint(start_worker, alice_client, versions):
    worker = start_worker(queues="default", name="serving", env={"OMP_NUM_THREADS": "1"})
    r = alice_client.post(
        "/api/v1/endpoints", {"slug": "support", "model_version": versions["a"].id}, format="json"
    )
    assert r.status_code == 201 and r.json()["status"] == "deploying"

    def ready():
        body = alice_client.get("/api/v1/endpoints/support").json()
        return body if body["status"] != "deploying" else None

    body = wait_until(ready, timeout=120, message="the worker to deploy the endpoint")
    assert body["status"] == "ready", (body, worker.output())
    assert body["model_version"]["id"] == versions["a"].id
    r = alice_client.post("/api/v1/endpoints/support/predict", {"input": CARD_TEXT}, format="json")
    assert r.status_code == 200 and r.json()["model_version"] == versions["a"].id


@pytest.mark.slow
def test_a_minilm_lora_version_is_published_and_predicts(tmp_path, alice_client, team, dataset_version):
    from finetune.engine import JobSpec, train
    from tests.engine import tiny_models
    from tests.jobs.conftest import submit

    tiny_models.write_jsonl(tmp_path / "train.jsonl", tiny_models.banking_rows())
    spec = {
        "base_model": MINILM_ID,
        "task": "classification",
        "method": "lora",
        "train_file": str(tmp_path / "train.jsonl"),
        "output_dir": str(tmp_path / "out"),
        "cache_dir": str(tmp_path / "cache"),
        "seed": 1,
        "max_steps": 4,
        "hyperparameters": {"batch_size": 8, "learning_rate": 1e-3},
    }
    out = train(JobSpec.from_dict(spec)).output_dir
    version = make_version(team, submit(alice_client, dataset_version)["id"], out, name="minilm")
    r = alice_client.post("/api/v1/endpoints", {"slug": "minilm", "model_version": version.id}, format="json")
    assert r.status_code == 201
    deploy(r.json()["id"])
    r = alice_client.post("/api/v1/endpoints/minilm/predict", {"input": [CARD_TEXT]}, format="json")
    assert r.status_code == 200, r.content
    labels = {row["label"] for row in tiny_models.banking_rows()}
    assert r.json()["data"][0]["label"] in labels
    assert r.json()["model_version"] == version.id
