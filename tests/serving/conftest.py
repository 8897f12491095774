"""Fixtures for serving: model versions trained for real by the engine on the tiny BERT (and one
on MiniLM), uploaded to storage like the runner does, and endpoints over them."""

from __future__ import annotations

import json

import pytest

from finetune.engine.vocabulary import Method, Task
from tests.engine import tiny_models
from tests.jobs.conftest import base_model, dataset_version, submit, tiny_bert_dir  # noqa: F401
from tests.jobs.tiny import banking_rows


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_bert_dir):  # noqa: F811
    """Two real classifiers on the same texts: `a` learns the labels, `b` the labels with two swapped
    (so which version answered is visible in the answer), and `broken` that cannot load."""
    from finetune.engine import JobSpec, train

    root = tmp_path_factory.mktemp("serving-artifacts")
    train_rows = banking_rows()
    flipped = {"card_arrival": "lost_or_stolen_card", "lost_or_stolen_card": "card_arrival"}
    tiny_models.write_jsonl(root / "a.jsonl", train_rows)
    tiny_models.write_jsonl(
        root / "b.jsonl",
        [{"text": r["text"], "label": flipped.get(r["label"], r["label"])} for r in train_rows],
    )

    def run(name, train_file):
        spec = {
            "base_model": str(tiny_bert_dir),
            "task": "classification",
            "method": "full",
            "train_file": str(root / train_file),
            "output_dir": str(root / name),
            "cache_dir": str(root / "cache"),
            "seed": 1,
            "hyperparameters": {"n_epochs": 6, "batch_size": 16, "learning_rate": 2e-3},
        }
        return train(JobSpec.from_dict(spec)).output_dir

    out = {"a": run("a", "a.jsonl"), "b": run("b", "b.jsonl")}
    broken = root / "broken"
    broken.mkdir()
    (broken / "engine.json").write_text(json.dumps({"task": "classification", "format": "full"}))
    (broken / "label_map.json").write_text(json.dumps({"labels": ["x", "y"]}))
    (broken / "config.json").write_text("{not json")
    out["broken"] = str(broken)
    return out


def make_version(team, job_id: str, folder: str, *, accuracy: float | None = None, name: str = "v"):
    """A ModelVersion of `job_id` whose files are `folder`, uploaded to storage."""
    from pathlib import Path

    from finetune.artifact_storage import storage_prefix_for_model_version, upload_dir
    from finetune.models import FineTuneJob, ModelVersion

    # The version is what a succeeded job leaves behind.
    FineTuneJob.objects.filter(pk=job_id).update(status="succeeded")
    job = FineTuneJob.objects.get(pk=job_id)
    version = ModelVersion(
        team=team,
        name=f"ft:tiny-bert:{team.slug}:{name}:{job.id}",
        job=job,
        base_model=job.base_model,
        task=Task.CLASSIFICATION,
        method=Method.FULL,
        metrics={"final": {"accuracy": accuracy}} if accuracy is not None else {},
        storage_prefix="",
        files=[],
    )
    version.save()
    version.storage_prefix = storage_prefix_for_model_version(team_id=team.id, version_id=version.id)
    version.files = upload_dir(Path(folder), version.storage_prefix)
    version.save()
    return version


@pytest.fixture
def versions(alice_client, team, dataset_version, trained):  # noqa: F811
    """alice's three versions (each needs its own job): a (accuracy 0.9), b (0.5), broken."""
    out = {}
    for key, acc in (("a", 0.9), ("b", 0.5), ("broken", 0.95)):
        job_id = submit(alice_client, dataset_version)["id"]
        out[key] = make_version(team, job_id, trained[key], accuracy=acc, name=key)
    return out


def deploy(endpoint_id: str) -> None:
    """Run what the deploy task runs, here in the test process."""
    from serving.models import Endpoint
    from serving.services import endpoint_deploy

    endpoint = Endpoint.objects.get(pk=endpoint_id)
    endpoint_deploy(endpoint_id=endpoint.id, version_id=endpoint.pending_version_id)


@pytest.fixture
def live(alice_client, versions):
    """alice's endpoint `support` serving version a."""
    r = alice_client.post(
        "/api/v1/endpoints", {"slug": "support", "model_version": versions["a"].id}, format="json"
    )
    assert r.status_code == 201, r.content
    deploy(r.json()["id"])
    return r.json()["id"]
