"""Refusals of our services in the reader's language: the web UI's own call to the API (the upload
page sends X-Tuneforge-UI) and the pages' messages read in Chinese on a Chinese page, while every
other API call keeps its documented English."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

pytestmark = pytest.mark.django_db

BIG = b"text,label\n" + b"word,a\n" * 40_000


def _upload(client, **headers):
    payload = {"file": SimpleUploadedFile("big.csv", BIG)}
    return client.post("/api/v1/datasets", payload, HTTP_ACCEPT_LANGUAGE="zh-hans", **headers)


def test_the_upload_pages_refusal_is_chinese_and_the_apis_stays_english(alice, settings):
    settings.TUNEFORGE_MAX_UPLOAD_BYTES = 100_000
    browser = Client()
    browser.force_login(alice)
    browser.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    token = browser.get("/datasets/new/").cookies[settings.CSRF_COOKIE_NAME].value

    from_page = _upload(browser, HTTP_X_TUNEFORGE_UI="1", HTTP_X_CSRFTOKEN=token)
    plain = _upload(browser, HTTP_X_CSRFTOKEN=token)

    assert from_page.status_code == plain.status_code == 413
    assert "超过了上传上限" in from_page.json()["error"]["message"]
    assert "is larger than the upload limit of 97.7 KB" in plain.json()["error"]["message"]
