import json
import os
import uuid

import pytest
import redis


@pytest.fixture
def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def rclient(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix(rclient):
    """A key prefix of this test alone; its keys are deleted afterwards."""
    value = f"test-{uuid.uuid4().hex[:10]}"
    yield value
    keys = list(rclient.scan_iter(match=f"{value}:*"))
    if keys:
        rclient.delete(*keys)


# --- Served endpoints and web processes for the quota gate ------------------------------------------

import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

from tests.jobs.conftest import base_model, dataset_version, submit, tiny_bert_dir  # noqa: E402, F401

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_quota_counters_left():
    """Quota counters and metered calls live in Redis: each test starts with none."""
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in ("tf:quota:*", "tf:meter:*"):
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)
    client.close()
    yield


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory, tiny_bert_dir):  # noqa: F811
    """The tiny BERT with a (random) two-label head: a real model to serve, no training needed."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-classifier")
    model = BertForSequenceClassification.from_pretrained(
        str(tiny_bert_dir), num_labels=2, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )  # fmt: skip
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(tiny_bert_dir)).save_pretrained(out)
    return out


def make_served_version(team, job_id: str, folder, *, task: str, name: str):
    """A ModelVersion of `job_id` whose files are `folder`, uploaded to storage."""
    from finetune.artifact_storage import storage_prefix_for_model_version, upload_dir
    from finetune.models import FineTuneJob, ModelVersion

    FineTuneJob.objects.filter(pk=job_id).update(status="succeeded")
    job = FineTuneJob.objects.get(pk=job_id)
    version = ModelVersion(
        team=team,
        name=f"ft:tiny:{team.slug}:{name}:{job.id}",
        job=job,
        base_model=job.base_model,
        task=task,
        method="full",
        storage_prefix="",
        files=[],
    )
    version.save()
    version.storage_prefix = storage_prefix_for_model_version(team_id=team.id, version_id=version.id)
    version.files = upload_dir(Path(folder), version.storage_prefix)
    version.save()
    return version


def _publish(alice_client, slug: str, version):
    from serving.models import Endpoint
    from serving.services import endpoint_deploy

    r = alice_client.post("/api/v1/endpoints", {"slug": slug, "model_version": version.id}, format="json")
    assert r.status_code == 201, r.content
    endpoint = Endpoint.objects.get(pk=r.json()["id"])
    endpoint_deploy(endpoint_id=endpoint.id, version_id=endpoint.pending_version_id)
    endpoint.refresh_from_db()
    assert endpoint.status == "ready", endpoint.status_message
    return endpoint


@pytest.fixture
def served(alice_client, team, dataset_version, tiny_classifier):  # noqa: F811
    """alice's classification endpoint `sentiment`, live."""
    job_id = submit(alice_client, dataset_version)["id"]
    version = make_served_version(team, job_id, tiny_classifier, task="classification", name="cls")
    return _publish(alice_client, "sentiment", version)


@pytest.fixture
def chat_endpoint(alice_client, team, dataset_version, tiny_gpt2):  # noqa: F811
    """alice's generation endpoint `writer` on the tiny GPT-2."""
    job_id = submit(alice_client, dataset_version)["id"]
    version = make_served_version(team, job_id, tiny_gpt2, task="chat_sft", name="gen")
    return _publish(alice_client, "writer", version)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`manage.py runserver` (threaded) in its own OS process, on the test database."""

    def __init__(self, env: dict | None = None) -> None:
        from django.db import connection

        from tests.celery_harness import wait_until

        port = _free_port()
        db = connection.settings_dict
        full_env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="config.settings.test",
            DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            **(env or {}),
        )
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=2)
                return True
            except OSError:
                return False

        try:
            wait_until(answers, timeout=90, interval=0.3, message="a server process answering /healthz")
        except AssertionError:
            self.proc.kill()
            raise

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (what a crashed or OOM-killed web process does)."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def start_server(transactional_db):
    started: list[ServerProcess] = []

    def start(env: dict | None = None) -> ServerProcess:
        server = ServerProcess(env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def http_post(url: str, body: dict, *, key: str, timeout: float = 60) -> tuple[int, dict, dict]:
    """(status, headers with lower-case names, JSON body) of one POST with an API key."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                json.loads(response.read()),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, json.loads(exc.read() or b"{}")


def seconds_left_in_minute() -> float:
    return 60 - time.time() % 60


def wait_for_a_fresh_minute(needed: float = 25) -> None:
    """Per-minute windows are aligned to the clock: a test counting within one waits for the next
    minute when fewer than `needed` seconds are left (alignment, not a timing assertion)."""
    left = seconds_left_in_minute()
    if left < needed:
        time.sleep(left + 0.05)
