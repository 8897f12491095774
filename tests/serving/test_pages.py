"""The endpoint pages: empty state, the endpoint page with its history and snippets, try-it, and isolation."""

from __future__ import annotations

import pytest

from serving.models import Endpoint

pytestmark = pytest.mark.django_db


def test_the_empty_list_says_what_to_do(alice_client):
    page = alice_client.get("/endpoints/").content.decode()
    assert "No endpoints yet" in page and "/endpoints/new/" in page


def test_the_endpoint_page_shows_history_snippets_and_tries_a_prediction(alice_client, alice, live, versions):
    page = alice_client.get("/endpoints/support/").content.decode()
    assert versions["a"].name in page and alice.email in page
    assert "http://testserver/api/v1/endpoints/support/predict" in page
    assert "base_url=&quot;http://testserver/v1&quot;" in page
    page = alice_client.post("/endpoints/support/", {"text": "my card has not arrived"}).content.decode()
    assert any(label in page for label in versions["a"].job.dataset_version.labels)


def test_unpublish_needs_the_confirmation_box(alice_client, live):
    alice_client.post("/endpoints/support/unpublish/", {})
    assert Endpoint.objects.filter(pk=live).exists()
    alice_client.post("/endpoints/support/unpublish/", {"confirm": "yes"})
    assert not Endpoint.objects.filter(pk=live).exists()


def test_charlie_gets_404_on_alices_endpoint_pages(charlie_client, live):
    assert charlie_client.get("/endpoints/support/").status_code == 404
    assert charlie_client.post("/endpoints/support/rollback/", {"confirm": "yes"}).status_code == 404
    assert "support" not in charlie_client.get("/endpoints/").content.decode()


def test_the_model_page_has_a_publish_button(alice_client, versions):
    page = alice_client.get(f"/jobs/models/{versions['a'].id}/").content.decode()
    assert f"/endpoints/new/?model_version={versions['a'].id}" in page
