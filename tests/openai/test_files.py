"""/v1/files through the official openai client: a file is a dataset version."""

from __future__ import annotations

import json

import openai
import pytest

from accounts.apikeys import apikey_revoke
from datasets_app.models import Dataset, DatasetVersion
from tests.openai.conftest import classification_jsonl, client_for, jsonl_file

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_uploaded_jsonl_file_is_listed_retrieved_downloaded_and_deleted(alice_openai, team):
    created = alice_openai.files.create(file=jsonl_file(classification_jsonl(40)), purpose="fine-tune")

    assert created.object == "file" and created.id.startswith("dsv-")
    assert (
        created.filename == "train.jsonl" and created.purpose == "fine-tune" and created.status == "processed"
    )
    version = DatasetVersion.objects.get(pk=created.id, team=team)
    assert version.task == "classification" and version.row_count + version.validation_row_count == 40

    assert [f.id for f in alice_openai.files.list()] == [created.id]
    assert alice_openai.files.retrieve(created.id).bytes == created.bytes

    content = alice_openai.files.content(created.id).content
    rows = [json.loads(line) for line in content.decode().splitlines()]
    assert len(content) == created.bytes and len(rows) == 40
    assert all(row["text"] and row["label"] for row in rows)

    deleted = alice_openai.files.delete(created.id)
    assert deleted.deleted is True and deleted.id == created.id
    with pytest.raises(openai.NotFoundError) as excinfo:
        alice_openai.files.retrieve(created.id)
    assert excinfo.value.body["code"] == "file_not_found"


def test_a_chat_file_becomes_a_chat_dataset(alice_openai, team):
    rows = [
        {"messages": [{"role": "user", "content": f"Hi {i}"}, {"role": "assistant", "content": f"Hello {i}"}]}
        for i in range(12)
    ]
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()

    created = alice_openai.files.create(file=jsonl_file(content, "chat.jsonl"), purpose="fine-tune")

    assert DatasetVersion.objects.get(pk=created.id).task == "chat_sft"


def test_a_file_with_a_broken_line_is_a_400_naming_the_line_and_nothing_is_stored(alice_openai, team):
    lines = classification_jsonl(10).decode().splitlines()
    lines[2] = '{"text": "no label here"}'

    with pytest.raises(openai.BadRequestError) as excinfo:
        alice_openai.files.create(file=jsonl_file(("\n".join(lines) + "\n").encode()), purpose="fine-tune")

    error = excinfo.value.body
    assert error["param"] == "file" and "line 3" in error["message"] and "label" in error["message"]
    assert not Dataset.objects.filter(team=team).exists() and not DatasetVersion.objects.exists()


def test_a_purpose_other_than_fine_tune_is_a_400_naming_purpose(alice_openai):
    with pytest.raises(openai.BadRequestError) as excinfo:
        alice_openai.files.create(file=jsonl_file(classification_jsonl(10)), purpose="assistants")
    assert excinfo.value.body["param"] == "purpose" and "fine-tune" in excinfo.value.body["message"]


def test_another_teams_file_is_a_404_everywhere(charlie_openai, uploaded):
    assert list(charlie_openai.files.list()) == []
    for call in (charlie_openai.files.retrieve, charlie_openai.files.content, charlie_openai.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(uploaded.id)
    assert DatasetVersion.objects.filter(pk=uploaded.id).exists()


def test_a_read_only_key_can_read_files_but_not_upload_or_delete(reader_openai, uploaded):
    assert reader_openai.files.retrieve(uploaded.id).id == uploaded.id
    with pytest.raises(openai.PermissionDeniedError):
        reader_openai.files.create(file=jsonl_file(classification_jsonl(10)), purpose="fine-tune")
    with pytest.raises(openai.PermissionDeniedError):
        reader_openai.files.delete(uploaded.id)


def test_a_revoked_key_is_an_authentication_error(live_server, team, alice_key):
    api_key, raw = alice_key
    apikey_revoke(team=team, api_key=api_key)
    with pytest.raises(openai.AuthenticationError) as excinfo:
        client_for(live_server, raw).files.list()
    assert "revoked" in excinfo.value.body["message"]
