"""The models pages: list, one version (metrics, lineage chain, card, offline loading) and the
one-click download of every artifact as a zip."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.pages.conftest import make_job, make_model_version, web

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(team, dataset_version, base_model, artifacts):
    return make_model_version(make_job(team, dataset_version, base_model), artifacts)


def _zip_of(response) -> zipfile.ZipFile:
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_the_models_list_shows_each_version_with_its_dataset_and_metrics(alice, version):
    page = web(alice).get("/jobs/models/").content.decode()
    assert version.name in page and "Banking intents v1" in page
    assert "validation accuracy 0.75" in page


def test_the_models_list_says_what_to_do_when_there_is_none(alice):
    page = web(alice).get("/jobs/models/").content.decode()
    assert "No fine-tuned model yet." in page and 'href="/jobs/new/"' in page


def test_the_model_page_draws_the_lineage_chain_to_the_endpoint(alice, team, version):
    from serving.models import Endpoint

    Endpoint.objects.create(team=team, slug="support", model_version=version, status="live")
    page = web(alice).get(f"/jobs/models/{version.id}/").content.decode()
    chain = page[page.index('<ol class="chain">') : page.index("</ol>")]
    assert chain.index("Banking intents v1") < chain.index(version.job_id) < chain.index(version.id)
    assert chain.index(version.id) < chain.index('href="/endpoints/support/"')


def test_the_model_page_renders_the_card_safely_and_keeps_long_lists_in_their_card(alice, version):
    page = web(alice).get(f"/jobs/models/{version.id}/").content.decode()
    card = page[page.index('id="model-card"') :]
    assert "<h2>tiny-bert fine-tuned for classification (full)</h2>" in card  # under the page's own h1
    assert "<td>valid_accuracy</td>" in card  # the Markdown table is a table
    assert '<script>alert("card")</script>' not in page and "&lt;script&gt;" in card
    assert "library_name" not in card  # the YAML front matter is not shown
    # 77 long labels and the hash sit in wrapping, scrolling boxes, not one endless line.
    assert '<ul class="chip-list labels">' in page and page.count("<li>label_x") == 77
    assert '<ul class="stats wrap-anywhere">' in page
    assert "validation accuracy" in page and "0.02" in page  # the untuned baseline beside it


def test_how_to_load_needs_no_model_hub(alice, version):
    page = web(alice).get(f"/jobs/models/{version.id}/").content.decode()
    section = page[page.index('id="how-to-load"') : page.index('id="model-card"')]
    assert 'os.environ["HF_HUB_OFFLINE"] = "1"' in section
    assert "/models/tiny-bert" in section  # the base model from its local path
    assert "PeftModel.from_pretrained(base, folder)" in section


def test_the_download_is_one_zip_of_every_artifact(alice, version, artifacts):
    page = web(alice).get(f"/jobs/models/{version.id}/").content.decode()
    assert f'href="/jobs/models/{version.id}/download/"' in page
    archive = _zip_of(web(alice).get(f"/jobs/models/{version.id}/download/"))
    names = sorted(archive.namelist())
    assert names == sorted(f"{version.id}/{entry['path']}" for entry in version.files)
    assert (
        archive.read(f"{version.id}/adapter_model.safetensors")
        == (artifacts / "adapter_model.safetensors").read_bytes()
    )
    assert archive.testzip() is None


def test_another_team_and_strangers_get_404(charlie, version):
    client = web(charlie)
    for url in (f"/jobs/models/{version.id}/", f"/jobs/models/{version.id}/download/"):
        assert client.get(url).status_code == 404, url
    assert version.name not in client.get("/jobs/models/").content.decode()


@pytest.mark.slow
def test_the_download_streams_from_s3_storage_too(
    alice, team, dataset_version, base_model, artifacts, bucket
):
    version = make_model_version(make_job(team, dataset_version, base_model), artifacts)
    assert f"{version.storage_prefix}/adapter_model.safetensors" in bucket()
    archive = _zip_of(web(alice).get(f"/jobs/models/{version.id}/download/"))
    assert archive.read(f"{version.id}/README.md").decode().startswith("---")
    assert len(archive.namelist()) == len(version.files) == 5
