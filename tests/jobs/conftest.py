"""Fixtures for the jobs tests: a real tiny base model, real dataset versions in storage, helpers
to submit jobs through the API and to wait on what a user would watch."""

from __future__ import annotations

import json

import pytest

from finetune.engine.vocabulary import Method, Task
from tests.celery_harness import wait_until
from tests.jobs.tiny import build_tiny_bert, make_dataset_version

# Short job heartbeats in worker processes, so a kill -9 is noticed within seconds.
FAST_WORKER_ENV = {
    "TUNEFORGE_JOB_HEARTBEAT_SECONDS": "0.5",
    "TUNEFORGE_JOB_FLUSH_SECONDS": "0.5",
    "TUNEFORGE_JOB_CONTROL_POLL_SECONDS": "0.5",
    "TUNEFORGE_WORKER_HEARTBEAT_SECONDS": "1",
    # One thread: a tiny model gains nothing from more, and on a shared CPU extra OpenMP threads
    # spin against other processes and slow every step down many times.
    "OMP_NUM_THREADS": "1",
}


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture
def base_model(db, tiny_bert_dir):
    from finetune.models import BaseModel

    return BaseModel.objects.create(
        name="tiny-bert",
        display_name="Tiny BERT (tests)",
        source=str(tiny_bert_dir),
        kind=BaseModel.Kind.ENCODER,
        tasks=[Task.CLASSIFICATION, Task.MULTILABEL_CLASSIFICATION],
        max_length=64,
        parameters_millions=0.11,
        is_default=True,
    )


@pytest.fixture
def dataset_version(team, base_model):
    return make_dataset_version(team)


def job_payload(version, **overrides) -> dict:
    """A job that trains for real in about a second: tiny model, 80 rows, 40 steps."""
    payload = {
        "dataset_version": version.id,
        "model": "tiny-bert",
        "method": Method.FULL,
        "device_class": "cpu",
        "max_steps": 40,
        "hyperparameters": {
            "batch_size": 8,
            "max_length": 32,
            "eval_every_steps": 20,
            "save_every_steps": 20,
            # These tests time and count steps; early stopping (on by default) would end long jobs.
            "early_stopping_patience": None,
        },
    }
    hyperparameters = overrides.pop("hyperparameters", None)
    payload.update(overrides)
    if hyperparameters:
        payload["hyperparameters"] = {**payload["hyperparameters"], **hyperparameters}
    return payload


def submit(client, version, **overrides) -> dict:
    response = client.post("/api/v1/jobs", job_payload(version, **overrides), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def wait_for_job(client, job_id: str, predicate, *, timeout: float, what: str = "the job") -> dict:
    """Poll the job's API body until `predicate(body)` holds; returns that body."""
    last: dict = {}

    def matches():
        last["body"] = client.get(f"/api/v1/jobs/{job_id}").json()
        return last["body"] if predicate(last["body"]) else None

    return wait_until(
        matches,
        timeout=timeout,
        interval=0.3,
        message=what,
        detail=lambda: f"last seen: {json.dumps(last.get('body'))[:2000]}",
    )


def wait_for_status(client, job_id: str, *statuses: str, timeout: float = 60) -> dict:
    return wait_for_job(
        client, job_id, lambda body: body["status"] in statuses, timeout=timeout, what=f"status in {statuses}"
    )
