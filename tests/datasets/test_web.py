"""The datasets pages: what a signed-in person sees, and what they may do."""

import hashlib
import json
import re

import pytest
from django.test import Client

from datasets_app.models import Dataset, DatasetVersion
from tests.datasets.conftest import OASST, stored_files
from tests.factories import DatasetVersionFactory


def chart_data(page: str) -> dict:
    """What the page hands Chart.js (its json_script block)."""
    block = re.search(r'<script id="dataset-chart-data" type="application/json">(.*?)</script>', page, re.S)
    assert block, "the page has no chart data"
    return json.loads(block.group(1))


@pytest.fixture
def version(team, alice):
    return DatasetVersionFactory(team=team, user=alice, name="Intents")


def web(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_list_shows_name_task_versions_rows_and_labels(alice, version):
    page = web(alice).get("/datasets/").content.decode()
    assert "Intents" in page and "Classification" in page
    assert f"/datasets/{version.dataset_id}/" in page
    assert f"{version.row_count} / {version.validation_row_count}" in page
    assert "Upload a dataset" in page


def test_the_upload_page_has_a_dropzone_progress_bar_and_mapping_options(alice):
    page = web(alice).get("/datasets/new/").content.decode()
    for marker in (
        'id="dropzone"',
        'id="progress-bar"',
        'name="label_column"',
        'name="pii_masking"',
        'name="validation_file"',
        'name="encoding"',
        'name="delimiter"',
        'name="quoting"',
        'name="header"',
        'name="columns"',
        '<label for="id_quoting">',
        '<label for="id_columns">',
        'data-upload-url="/api/v1/datasets"',
        "datasets/upload.js",
    ):
        assert marker in page, marker


def test_the_dataset_page_lists_versions_and_offers_a_new_upload(alice, version):
    page = web(alice).get(f"/datasets/{version.dataset_id}/").content.decode()
    assert f"/datasets/versions/{version.id}/" in page and "v1" in page
    assert f'data-upload-url="/api/v1/datasets/{version.dataset_id}/versions"' in page
    assert version.sha256[:12] in page


def test_the_version_page_shows_report_charts_preview_examples_and_downloads(alice, version):
    page = web(alice).get(f"/datasets/versions/{version.id}/").content.decode()
    assert "No blocking errors" in page
    charts = chart_data(page)
    assert 'id="label-chart"' in page and len(charts["labels"]["names"]) == 4
    assert 'id="token-chart"' in page and sum(charts["tokens"]["counts"]) > 0
    assert "sha256 of the normalized data" in page and version.source_sha256 in page
    assert f"/jobs/new/?dataset_version={version.id}" in page  # "Fine-tune this"
    assert "card_arrival" in page and "Examples per label" in page
    assert f"/api/v1/dataset-versions/{version.id}/download?split=train&amp;format=csv" in page
    assert "Rows 1–20 of" in page
    second = web(alice).get(f"/datasets/versions/{version.id}/", {"split": "validation", "offset": "0"})
    assert f"of {version.validation_row_count}" in second.content.decode()


def test_the_version_page_of_a_chat_dataset_shows_conversations(alice, team):
    chat = DatasetVersionFactory(team=team, user=alice, source=OASST, validation_fraction=0)
    page = web(alice).get(f"/datasets/versions/{chat.id}/").content.decode()
    assert 'class="chat"' in page and "assistant" in page
    assert 'id="label-chart"' not in page and "Examples per label" not in page


def test_a_viewer_sees_no_upload_or_delete_and_cannot_post(vera, version):
    client = web(vera)
    assert "Upload a dataset" not in client.get("/datasets/").content.decode()
    assert client.get("/datasets/new/").status_code == 403
    page = client.get(f"/datasets/versions/{version.id}/").content.decode()
    assert "Delete version" not in page
    assert client.post(f"/datasets/versions/{version.id}/delete/", {"confirm": "yes"}).status_code == 403
    assert client.post(f"/datasets/{version.dataset_id}/delete/", {"confirm": "yes"}).status_code == 403
    assert DatasetVersion.objects.filter(pk=version.id).exists()


def test_charlie_gets_404_on_alices_pages(charlie, version):
    client = web(charlie)
    assert client.get(f"/datasets/{version.dataset_id}/").status_code == 404
    assert client.get(f"/datasets/versions/{version.id}/").status_code == 404
    assert client.post(f"/datasets/versions/{version.id}/delete/", {"confirm": "yes"}).status_code == 404
    assert client.post(f"/datasets/{version.dataset_id}/delete/", {"confirm": "yes"}).status_code == 404
    assert "Intents" not in client.get("/datasets/").content.decode()


def test_deleting_a_version_needs_the_confirmation_box(
    alice, version, media_root, django_capture_on_commit_callbacks
):
    client = web(alice)
    response = client.post(f"/datasets/versions/{version.id}/delete/", follow=True)
    assert "Tick the confirmation box" in response.content.decode()
    assert DatasetVersion.objects.filter(pk=version.id).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/datasets/versions/{version.id}/delete/", {"confirm": "yes"}, follow=True)
    assert "Version 1 was deleted." in response.content.decode()
    assert not DatasetVersion.objects.exists() and stored_files(media_root) == []


def test_deleting_a_dataset_from_its_page(alice, version, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = web(alice).post(f"/datasets/{version.dataset_id}/delete/", {"confirm": "yes"}, follow=True)
    assert "was deleted" in response.content.decode()
    assert not Dataset.objects.exists()


def test_the_dashboard_shows_a_datasets_card(alice, version):
    page = web(alice).get("/").content.decode()
    assert 'href="/datasets/"' in page and "training rows" in page


def test_the_version_page_and_stats_work_while_the_cache_redis_is_down(
    alice, alice_client, version, settings, caplog
):
    # A real Redis client pointed at a closed port: every cache call fails to connect.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    page = web(alice).get(f"/datasets/versions/{version.id}/")
    assert page.status_code == 200 and 'id="token-chart"' in page.content.decode()
    stats = alice_client.get(f"/api/v1/dataset-versions/{version.id}/stats")
    assert stats.status_code == 200, stats.content[:300]
    assert stats.json()["token_lengths"]["sampled"] > 0
    assert "cache unavailable" in caplog.text


def test_the_uploaded_files_own_hash_is_kept_beside_the_normalized_datas(alice, alice_client, version):
    from pathlib import Path

    uploaded = (Path(__file__).resolve().parents[2] / "samples/banking77/train_4intents.csv").read_bytes()
    assert version.source_sha256 == hashlib.sha256(uploaded).hexdigest() != version.sha256
    page = web(alice).get(f"/datasets/versions/{version.id}/").content.decode()
    assert "sha256 of the uploaded file" in page and version.source_sha256 in page
    api = alice_client.get(f"/api/v1/dataset-versions/{version.id}").json()
    assert api["source_sha256"] == version.source_sha256 and api["sha256"] == version.sha256


def test_the_version_page_shows_each_warnings_detail_in_chinese(alice, team, tmp_path):
    from django.conf import settings

    rows = [f"positive text number {i},pos" for i in range(60)]
    rows += ["negative one,neg", "negative two,neg", "positive text number 1,pos", "spaced label, neg "]
    source = tmp_path / "warned.csv"
    source.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    warned = DatasetVersionFactory(team=team, user=alice, source=source, validation_fraction=0)
    codes = {w["code"] for w in warned.report["warnings"]}
    assert {"duplicates", "rare_labels", "class_imbalance", "trimmed_labels"} <= codes, codes

    client = web(alice)
    english = client.get(f"/datasets/versions/{warned.id}/").content.decode()
    assert "training row(s) repeat an earlier row exactly" in english
    assert "label(s) have fewer than" in english and "heavy class imbalance" in english.lower()

    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    chinese = client.get(f"/datasets/versions/{warned.id}/").content.decode()
    assert "1 条训练行与前面的某行完全相同" in chinese and "repeat an earlier row exactly" not in chinese
    assert "个标签的训练样本少于" in chinese and "have fewer than" not in chinese
    assert "类别严重不平衡" in chinese and "heavy class imbalance" not in chinese.lower()
    assert "周围的空格已被删除" in chinese and "前几行：" in chinese
    # A report stored before warnings kept their params still shows its English detail.
    old = warned.report
    old["warnings"] = [{k: v for k, v in w.items() if k != "params"} for w in old["warnings"]]
    DatasetVersion.objects.filter(pk=warned.pk).update(report=old)
    assert "repeat an earlier row exactly" in client.get(f"/datasets/versions/{warned.id}/").content.decode()
