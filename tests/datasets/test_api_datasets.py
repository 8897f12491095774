"""The datasets API end to end: upload → storage → database → what the user reads back."""

import csv
import io
import json

from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets_app.models import Dataset, DatasetVersion
from tests.datasets.conftest import BANKING, OASST, TWITTER_TRAIN, TWITTER_VALID, stored_files
from tests.factories import ApiKeyFactory


def post_file(client, path, url="/api/v1/datasets", **fields):
    with open(path, "rb") as fh:
        return client.post(url, {"file": fh, **fields}, format="multipart")


def stored_rows(name: str) -> list[dict]:
    with default_storage.open(name, "rb") as fh:
        return [json.loads(line) for line in fh]


# --- the three real data sets ----------------------------------------------------------------------


def test_banking77_imports_as_a_classification_dataset_with_a_stratified_split(
    alice_client, alice, team, media_root
):
    response = post_file(alice_client, BANKING, name="Banking77")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True
    version = body["version"]
    assert (version["task"], version["row_count"], version["validation_row_count"]) == (
        "classification",
        270,
        30,
    )
    assert len(version["labels"]) == 75
    assert version["column_mapping"] == {"text": "text", "label": "category", "text_pair": None}
    assert body["dataset"]["name"] == "Banking77" and body["dataset"]["version_count"] == 1

    row = DatasetVersion.objects.get(pk=version["id"])
    assert row.team == team and row.created_by == alice and row.dataset.created_by == alice
    assert row.sha256 == version["sha256"] and len(row.sha256) == 64
    assert row.normalized_file.name == f"teams/{team.id}/datasets/{row.dataset_id}/{row.id}/train.jsonl"
    assert len(stored_rows(row.normalized_file.name)) == 270
    assert len(stored_rows(row.validation_file.name)) == 30
    assert len(stored_files(media_root)) == 2  # the two splits; the original is not kept
    assert {w["code"] for w in body["report"]["warnings"]} >= {"rare_labels", "class_imbalance"}


def test_the_twitter_files_import_with_their_own_validation_split(alice_client):
    with open(TWITTER_TRAIN, "rb") as train, open(TWITTER_VALID, "rb") as valid:
        response = alice_client.post(
            "/api/v1/datasets",
            {
                "file": train,
                "validation_file": valid,
                "name": "Twitter sentiment",
                "label_names": json.dumps({"0": "bearish", "1": "bullish", "2": "neutral"}),
            },
            format="multipart",
        )
    assert response.status_code == 201, response.content
    version = response.json()["version"]
    assert (version["row_count"], version["validation_row_count"]) == (300, 100)
    assert version["labels"] == ["bearish", "bullish", "neutral"]
    assert version["label_counts"] == {"bullish": 174, "bearish": 126}
    stats = response.json()["report"]["stats"]
    assert stats["split"] == {"method": "file", "validation_file": "sent_valid_100.csv"}
    assert stats["validation_label_counts"]["neutral"] == 8


def test_the_oasst_alpaca_file_imports_as_chat(alice_client):
    response = post_file(alice_client, OASST)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["dataset"]["name"] == "oaast_sft_zh_120"  # defaults to the file name
    assert body["version"]["task"] == "chat_sft"
    assert body["version"]["row_count"] + body["version"]["validation_row_count"] == 120
    row = stored_rows(DatasetVersion.objects.get().normalized_file.name)[0]
    assert [m["role"] for m in row["messages"]][-1] == "assistant"


# --- versions ----------------------------------------------------------------------------------


def test_identical_content_returns_the_existing_version(alice_client):
    first = post_file(alice_client, BANKING, name="Banking")
    again = post_file(alice_client, BANKING, name="Banking")
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["version"]["id"] == first.json()["version"]["id"]
    assert DatasetVersion.objects.count() == 1 and Dataset.objects.count() == 1
    dataset_id = first.json()["dataset"]["id"]
    third = post_file(alice_client, BANKING, url=f"/api/v1/datasets/{dataset_id}/versions")
    assert third.status_code == 200 and third.json()["version"]["id"] == first.json()["version"]["id"]


def test_new_content_becomes_the_next_version(alice_client):
    first = post_file(alice_client, BANKING, name="Banking")
    dataset_id = first.json()["dataset"]["id"]
    second = post_file(alice_client, BANKING, url=f"/api/v1/datasets/{dataset_id}/versions", seed="5")
    assert second.status_code == 201
    assert second.json()["version"]["number"] == 2
    assert second.json()["version"]["sha256"] != first.json()["version"]["sha256"]
    listing = alice_client.get(f"/api/v1/datasets/{dataset_id}/versions").json()
    assert [v["number"] for v in listing["data"]] == [2, 1]
    assert alice_client.get(f"/api/v1/datasets/{dataset_id}").json()["latest_version"]["number"] == 2


def test_a_version_of_another_task_is_refused(alice_client):
    first = post_file(alice_client, BANKING, name="Mixed")
    dataset_id = first.json()["dataset"]["id"]
    response = post_file(alice_client, OASST, url=f"/api/v1/datasets/{dataset_id}/versions")
    assert response.status_code == 422
    assert "holds chat_sft data, but the task is classification" in response.json()["error"]["message"]
    assert DatasetVersion.objects.count() == 1


def test_column_overrides_choose_the_columns(alice_client):
    content = b"id,body,topic,label\n1,first text,sports,x\n2,second text,news,y\n3,third,sports,x\n"
    response = alice_client.post(
        "/api/v1/datasets",
        {
            "file": SimpleUploadedFile("multi.csv", content),
            "text_column": "body",
            "label_column": "topic",
            "validation_fraction": "0",
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    version = response.json()["version"]
    assert version["column_mapping"]["text"] == "body" and version["labels"] == ["news", "sports"]


def test_pii_masking_stores_only_masked_text_and_counts_it(alice_client, media_root):
    content = (
        b"text,label\nwrite to jane@example.com,contact\ncall +1 (555) 123-4567 now,contact\n"
        b"pay with 4111-1111-1111-1111,payment\nIBAN DE89 3704 0044 0532 0130 00 please,payment\n"
    )
    response = alice_client.post(
        "/api/v1/datasets",
        {"file": SimpleUploadedFile("pii.csv", content), "pii_masking": "true", "validation_fraction": "0"},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    assert response.json()["dataset"]["pii_masking"] is True
    assert response.json()["report"]["masked"] == {"email": 1, "phone": 1, "card": 1, "iban": 1}
    texts = [row["text"] for row in stored_rows(DatasetVersion.objects.get().normalized_file.name)]
    assert texts == ["write to [EMAIL]", "call [PHONE] now", "pay with [CARD]", "IBAN [IBAN] please"]
    assert not any(b"jane@example.com" in p.read_bytes() for p in stored_files(media_root))


def test_deduplicate_drops_repeated_rows(alice_client):
    content = b"text,label\nsame,a\nsame,a\nother,b\nthird,a\n"
    response = alice_client.post(
        "/api/v1/datasets",
        {"file": SimpleUploadedFile("dups.csv", content), "deduplicate": "true", "validation_fraction": "0"},
        format="multipart",
    )
    assert response.json()["version"]["row_count"] == 3
    assert response.json()["report"]["stats"]["duplicates_removed"] == 1


def test_datasets_are_listed_and_can_be_renamed(alice_client):
    post_file(alice_client, BANKING, name="Banking")
    post_file(alice_client, OASST, name="Chat")
    listing = alice_client.get("/api/v1/datasets").json()
    assert listing["object"] == "list" and [d["name"] for d in listing["data"]] == ["Chat", "Banking"]
    dataset_id = listing["data"][1]["id"]
    response = alice_client.patch(
        f"/api/v1/datasets/{dataset_id}", {"name": "Banking 77", "description": "intents"}, format="json"
    )
    assert response.status_code == 200 and response.json()["name"] == "Banking 77"
    clash = alice_client.patch(f"/api/v1/datasets/{dataset_id}", {"name": "Chat"}, format="json")
    assert clash.status_code == 409


def test_an_api_key_with_write_scope_can_upload(team):
    from rest_framework.test import APIClient

    key = ApiKeyFactory(team=team, scopes=["read", "write"])
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {key.raw}")
    response = post_file(client, BANKING)
    assert response.status_code == 201, response.content
    assert DatasetVersion.objects.get().created_by is None
    read_only = ApiKeyFactory(team=team, scopes=["read"])
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {read_only.raw}")
    assert post_file(client, BANKING, name="Again").status_code == 403
    assert client.get("/api/v1/datasets").status_code == 200


# --- reading a version back -------------------------------------------------------------------------


def test_report_preview_stats_examples_and_downloads(alice_client):
    version_id = post_file(alice_client, BANKING).json()["version"]["id"]
    base = f"/api/v1/dataset-versions/{version_id}"

    report = alice_client.get(f"{base}/report").json()
    assert report["object"] == "dataset.version.report" and report["error_count"] == 0
    assert report["stats"]["rows"] == 270

    page = alice_client.get(f"{base}/preview", {"limit": 5}).json()
    assert [r["row"] for r in page["data"]] == [1, 2, 3, 4, 5]
    assert page["has_more"] is True and page["next_offset"] == 5 and page["total"] == 270
    last = alice_client.get(f"{base}/preview", {"offset": 268, "limit": 5}).json()
    assert [r["row"] for r in last["data"]] == [269, 270] and last["has_more"] is False
    validation = alice_client.get(f"{base}/preview", {"split": "validation", "limit": 100}).json()
    assert len(validation["data"]) == 30

    stats = alice_client.get(f"{base}/stats").json()
    assert stats["labels"][0] == {
        "label": "wrong_exchange_rate_for_cash_withdrawal",
        "train": 12,
        "validation": 1,
    }
    tokens = stats["token_lengths"]
    assert tokens["model"] == "sentence-transformers/all-MiniLM-L6-v2" and tokens["sampled"] == 270
    assert sum(b["count"] for b in tokens["bins"]) == 270 and 5 < tokens["p50"] < 40

    examples = alice_client.get(f"{base}/examples", {"label": "card_arrival"}).json()["data"]
    assert list(examples) == ["card_arrival"] and len(examples["card_arrival"]) == 4
    assert all(r["label"] == "card_arrival" for r in examples["card_arrival"])
    every = alice_client.get(f"{base}/examples").json()["data"]
    assert len(every) == 75 and all(len(rows) <= 3 for rows in every.values())

    jsonl = alice_client.get(f"{base}/download", {"format": "jsonl", "split": "validation"})
    assert jsonl.status_code == 200 and "attachment" in jsonl["Content-Disposition"]
    assert len(b"".join(jsonl.streaming_content).splitlines()) == 30
    as_csv = alice_client.get(f"{base}/download", {"format": "csv"})
    assert as_csv["Content-Type"].startswith("text/csv")
    records = list(csv.reader(io.StringIO(b"".join(as_csv.streaming_content).decode("utf-8-sig"))))
    assert records[0] == ["text", "label"] and len(records) == 271


def test_bad_read_parameters_are_400(alice_client):
    version_id = post_file(alice_client, BANKING).json()["version"]["id"]
    base = f"/api/v1/dataset-versions/{version_id}"
    assert alice_client.get(f"{base}/preview", {"split": "test"}).json()["error"]["field"] == "split"
    assert alice_client.get(f"{base}/preview", {"limit": 1000}).status_code == 400
    assert alice_client.get(f"{base}/examples", {"label": "nope"}).json()["error"]["field"] == "label"
    assert alice_client.get(f"{base}/download", {"format": "xlsx"}).json()["error"]["field"] == "format"
    assert (
        alice_client.get(f"{base}/stats", {"model": "gpt-99"}).json()["error"]["field"] == "tokenizer_model"
    )


def test_csv_downloads_neutralize_formulas(alice_client):
    content = b'text,label\n"=HYPERLINK(""http://evil"")",a\n@SUM(1),b\n-2+3,a\nplain,b\n'
    response = alice_client.post(
        "/api/v1/datasets",
        {"file": SimpleUploadedFile("inject.csv", content), "validation_fraction": "0"},
        format="multipart",
    )
    version_id = response.json()["version"]["id"]
    download = alice_client.get(f"/api/v1/dataset-versions/{version_id}/download", {"format": "csv"})
    records = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode("utf-8-sig"))))
    assert [r[0] for r in records[1:]] == ['\'=HYPERLINK("http://evil")', "'@SUM(1)", "'-2+3", "plain"]
    # The JSONL keeps the data exactly as uploaded.
    jsonl = alice_client.get(f"/api/v1/dataset-versions/{version_id}/download", {"format": "jsonl"})
    assert (
        json.loads(b"".join(jsonl.streaming_content).splitlines()[0])["text"] == '=HYPERLINK("http://evil")'
    )


def test_chat_versions_download_one_message_per_csv_row(alice_client):
    version_id = post_file(alice_client, OASST, validation_fraction="0").json()["version"]["id"]
    download = alice_client.get(f"/api/v1/dataset-versions/{version_id}/download", {"format": "csv"})
    records = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode("utf-8-sig"))))
    assert records[0] == ["conversation", "turn", "role", "content"]
    assert records[1][:3] == ["1", "1", "user"]
    examples = alice_client.get(f"/api/v1/dataset-versions/{version_id}/examples")
    assert (
        examples.status_code == 400 and "Chat datasets have no labels" in examples.json()["error"]["message"]
    )


def test_the_openapi_schema_documents_the_dataset_routes(alice_client):
    schema = alice_client.get("/api/schema/", {"format": "json"})
    paths = json.loads(schema.content)["paths"]
    for route in (
        "/api/v1/datasets",
        "/api/v1/datasets/{dataset_id}",
        "/api/v1/datasets/{dataset_id}/versions",
        "/api/v1/dataset-versions/{version_id}",
        "/api/v1/dataset-versions/{version_id}/report",
        "/api/v1/dataset-versions/{version_id}/preview",
        "/api/v1/dataset-versions/{version_id}/stats",
        "/api/v1/dataset-versions/{version_id}/examples",
        "/api/v1/dataset-versions/{version_id}/download",
    ):
        assert route in paths, route
    upload = paths["/api/v1/datasets"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"201", "200", "413", "422"} <= set(upload["responses"])


def test_patching_only_the_description_keeps_pii_masking(alice_client):
    content = b"text,label\nmail a@b.example,x\nhello,y\n"
    response = alice_client.post(
        "/api/v1/datasets",
        {"file": SimpleUploadedFile("p.csv", content), "pii_masking": "true"},
        format="multipart",
    )
    dataset_id = response.json()["dataset"]["id"]
    patched = alice_client.patch(
        f"/api/v1/datasets/{dataset_id}", {"description": "masked data"}, format="multipart"
    )
    assert patched.status_code == 200
    assert patched.json()["description"] == "masked data" and patched.json()["pii_masking"] is True


def test_the_list_shows_each_datasets_newest_version_with_a_constant_number_of_queries(alice_client, team):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import DatasetVersionFactory

    first = DatasetVersionFactory(team=team, name="One")
    DatasetVersionFactory(team=team, name="One", dataset=first.dataset, seed=1)  # version 2 of "One"
    with CaptureQueriesContext(connection) as one_dataset:
        alice_client.get("/api/v1/datasets")
    DatasetVersionFactory(team=team, name="Two")
    DatasetVersionFactory(team=team, name="Three")
    with CaptureQueriesContext(connection) as three_datasets:
        listing = alice_client.get("/api/v1/datasets").json()
    assert len(three_datasets) == len(one_dataset)  # no query per listed dataset
    newest = {d["name"]: d["latest_version"]["number"] for d in listing["data"]}
    assert newest == {"One": 2, "Two": 1, "Three": 1}
