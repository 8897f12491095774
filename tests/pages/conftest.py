"""Fixtures for the site's pages: jobs and model versions made straight in the database (these
tests look at pages, not at training), and many of them for the query-count tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from common.models import new_public_id
from finetune.artifact_storage import storage_prefix_for_model_version, upload_dir
from finetune.models import BaseModel, FineTuneJob, ModelVersion
from tests.factories import DatasetVersionFactory

CARD = """---
library_name: transformers
base_model: tiny-bert
---

# tiny-bert fine-tuned for classification (full)

| metric | fine-tuned |
|---|---|
| valid_accuracy | 0.75 |

<script>alert("card")</script>

## How to load
"""


def web(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def base_model(db):
    return BaseModel.objects.create(
        name="tiny-bert",
        display_name="Tiny BERT",
        source="/models/tiny-bert",
        kind=BaseModel.Kind.ENCODER,
        tasks=["classification"],
        max_length=64,
        is_default=True,
    )


@pytest.fixture
def dataset_version(team, alice, base_model):
    return DatasetVersionFactory(team=team, user=alice, name="Banking intents")


def make_job(team, dataset_version, base_model, **fields) -> FineTuneJob:
    values = {
        "team": team,
        "base_model": base_model,
        "dataset_version": dataset_version,
        "task": "classification",
        "method": "lora",
        "device_class": "cpu",
        "queue": "cpu",
        "status": "queued",
    }
    values.update(fields)
    return FineTuneJob.objects.create(**values)


def make_model_version(job: FineTuneJob, folder: Path, **fields) -> ModelVersion:
    """A succeeded job's model version whose files (`folder`) are uploaded to storage."""
    FineTuneJob.objects.filter(pk=job.pk).update(status="succeeded")
    job.refresh_from_db()
    version = ModelVersion(
        team=job.team,
        name=f"ft:tiny-bert:{job.team.slug}:web:{job.id}",
        job=job,
        base_model=job.base_model,
        task="classification",
        method=job.method,
        labels=[f"label_{'x' * 40}_{i}" for i in range(77)],
        metrics={
            "final": {"valid_accuracy": 0.75, "valid_loss": 0.61, "step": 40},
            "baseline": {"base_model": {"valid_accuracy": 0.02}},
        },
        lineage={
            "base_model": "tiny-bert",
            "dataset_version": job.dataset_version_id,
            "dataset_sha256": job.dataset_version.sha256,
            "seed": 42,
            "code_version": "git:abc",
            "resolved_spec": {"seed": 42},
        },
        storage_prefix="",
        files=[],
        **fields,
    )
    version.save()
    version.storage_prefix = storage_prefix_for_model_version(team_id=job.team_id, version_id=version.id)
    version.files = upload_dir(folder, version.storage_prefix)
    version.save()
    return version


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = tmp_path / "artifacts"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "README.md").write_text(CARD, encoding="utf-8")
    (folder / "label_map.json").write_text('{"labels": ["a", "b"]}')
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (folder / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (folder / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    return folder


def many_jobs(team, dataset_version, base_model, *, count: int, points: int) -> None:
    """`count` jobs of the team (a tenth of them succeeded with a model version), each with `points`
    training metric points, written in bulk with SQL so that 1,000 × 1,000 takes seconds."""
    now = timezone.now()
    jobs = [
        FineTuneJob(
            id=new_public_id(FineTuneJob.id_prefix),
            team=team,
            base_model=base_model,
            dataset_version=dataset_version,
            task="classification",
            method="lora",
            device_class="cpu",
            queue="cpu",
            status=("succeeded" if i % 10 == 0 else "queued" if i % 10 == 1 else "failed"),
            latest_metrics={"step": points, "train_loss": 0.5},
            created_at=now,
            updated_at=now,
        )
        for i in range(count)
    ]
    FineTuneJob.objects.bulk_create(jobs, batch_size=500)
    versions = [
        ModelVersion(
            id=new_public_id(ModelVersion.id_prefix),
            team=team,
            name=f"ft:tiny-bert:{team.slug}:bulk:{job.id}",
            job=job,
            base_model=base_model,
            task="classification",
            method="lora",
            metrics={"final": {"valid_accuracy": 0.8}},
            storage_prefix=f"teams/{team.id}/models/{job.id}",
            files=[],
            created_at=now,
            updated_at=now,
        )
        for job in jobs
        if job.status == "succeeded"
    ]
    ModelVersion.objects.bulk_create(versions, batch_size=500)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO finetune_metricpoint (job_id, step, kind, epoch, "values", created_at)
            SELECT job.id, s, 'train', 0, jsonb_build_object('train_loss', 1.0 / s), now()
            FROM finetune_finetunejob job, generate_series(1, %s) s
            WHERE job.id = ANY(%s)
            """,
            [points, [job.id for job in jobs]],
        )


# The S3 fixtures (moto's server on loopback) of the jobs tests, for the zip download on S3.
from tests.jobs.test_s3_storage import bucket, s3_endpoint  # noqa: E402, F401
