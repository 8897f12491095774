"""The official `openai` client against a live server, with keys made by the API-key service."""

from __future__ import annotations

import io
import json

import pytest

from tests.jobs.conftest import base_model, dataset_version, tiny_bert_dir  # noqa: F401 - fixtures reused here
from tests.jobs.tiny import banking_rows
from tests.serving.conftest import live, trained, versions  # noqa: F401 - alice's endpoint `support`


def classification_jsonl(n: int = 40) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in banking_rows()[:n]).encode()


def jsonl_file(content: bytes, name: str = "train.jsonl") -> tuple[str, io.BytesIO]:
    return (name, io.BytesIO(content))


def client_for(live_server, raw_key: str):
    import openai

    return openai.OpenAI(api_key=raw_key, base_url=f"{live_server.url}/v1", max_retries=0, timeout=120)


def _key(team, scopes, user):
    from accounts.apikeys import apikey_create

    return apikey_create(team=team, name="openai client", scopes=scopes, user=user)


@pytest.fixture
def alice_key(team, alice):
    return _key(team, ["read", "write"], alice)


@pytest.fixture
def alice_openai(live_server, alice_key):
    return client_for(live_server, alice_key[1])


@pytest.fixture
def reader_openai(live_server, team, alice):
    return client_for(live_server, _key(team, ["read"], alice)[1])


@pytest.fixture
def charlie_openai(live_server, charlie_team, charlie):
    return client_for(live_server, _key(charlie_team, ["read", "write"], charlie)[1])


@pytest.fixture
def uploaded(alice_openai):
    return alice_openai.files.create(file=jsonl_file(classification_jsonl()), purpose="fine-tune")
