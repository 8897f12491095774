"""No shared disk: with TUNEFORGE_STORAGE=s3 the web side and a worker process exchange the dataset,
the checkpoints and the model artifacts only through an S3-compatible bucket (moto's server on
loopback, a real HTTP S3 API)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from finetune.models import ModelVersion
from tests.celery_harness import wait_until
from tests.jobs.conftest import FAST_WORKER_ENV, make_dataset_version, submit, wait_for_status

pytestmark = pytest.mark.slow

BUCKET = "tuneforge-test"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_S3_REGION_NAME": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_endpoint():
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        if server.poll() is not None:
            raise AssertionError("moto_server exited before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    try:
        wait_until(listening, timeout=20, message="moto_server to listen")
    except AssertionError:
        server.kill()
        raise
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def bucket(s3_endpoint, settings):
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    options = {
        **django_settings.S3_STORAGE["OPTIONS"],
        "bucket_name": BUCKET,
        "endpoint_url": s3_endpoint,
        "access_key": "testing",
        "secret_key": "testing",
        "region_name": "us-east-1",
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }

    def keys() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    return keys


def test_a_worker_on_s3_storage_reads_the_dataset_and_writes_checkpoints_and_artifacts_to_the_bucket(
    alice_client, team, base_model, start_worker, bucket, s3_endpoint, tmp_path
):
    version = make_dataset_version(team)
    assert version.normalized_file.name in bucket()  # the upload went to the bucket, not a folder
    worker_disk = tmp_path / "worker-machine"  # its own media, work and cache folders: nothing shared
    start_worker(
        queues="cpu",
        name="s3",
        env={
            **FAST_WORKER_ENV,
            **CREDENTIALS,
            "TUNEFORGE_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": BUCKET,
            "AWS_S3_ENDPOINT_URL": s3_endpoint,
            "TUNEFORGE_TEST_DIR": str(worker_disk),
        },
    )
    job = submit(alice_client, version, max_steps=40)

    done = wait_for_status(alice_client, job["id"], "succeeded", "failed", timeout=120)

    assert done["status"] == "succeeded", done["error"]
    keys = bucket()
    model = ModelVersion.objects.get(pk=done["result_model_version"])
    assert {f"{model.storage_prefix}/{f['path']}" for f in model.files} <= set(keys)
    assert f"{model.storage_prefix}/model.safetensors" in keys
    checkpoints = [k for k in keys if k.startswith(f"teams/{team.id}/jobs/{job['id']}/checkpoints/")]
    assert {k.split("/")[5] for k in checkpoints} == {"step-20", "step-30"}  # the last two kept
    # The worker fetched the dataset from the bucket into its own cache; no media folder holds any of it.
    assert (worker_disk / "cache" / "datasets" / version.sha256 / "train.jsonl").exists()
    for media in (Path(django_settings.MEDIA_ROOT), worker_disk / "media"):
        assert not [p for p in (media / "teams" / team.id).rglob("*") if p.is_file()], f"files in {media}"
    download = alice_client.get(f"/api/v1/models/{model.id}/files/label_map.json")
    assert download.status_code == 200 and b"card_arrival" in b"".join(download.streaming_content)
