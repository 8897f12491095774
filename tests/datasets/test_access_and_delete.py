"""Team scoping on every dataset route, roles, and deletion (files included; refused while a job uses it)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from common.errors import NotFound
from datasets_app.models import Dataset, DatasetVersion
from datasets_app.selectors import dataset_version_get, dataset_version_in_use
from tests.datasets.conftest import stored_files
from tests.factories import DatasetVersionFactory


@pytest.fixture
def version(team, alice):
    return DatasetVersionFactory(team=team, user=alice, name="Intents")


def routes(version) -> list[tuple[str, str, bool]]:
    """(method, url, is_write) for every dataset route."""
    ds, v = version.dataset_id, version.id
    return [
        ("get", "/api/v1/datasets", False),
        ("post", "/api/v1/datasets", True),
        ("get", f"/api/v1/datasets/{ds}", False),
        ("patch", f"/api/v1/datasets/{ds}", True),
        ("delete", f"/api/v1/datasets/{ds}", True),
        ("get", f"/api/v1/datasets/{ds}/versions", False),
        ("post", f"/api/v1/datasets/{ds}/versions", True),
        ("get", f"/api/v1/dataset-versions/{v}", False),
        ("delete", f"/api/v1/dataset-versions/{v}", True),
        ("get", f"/api/v1/dataset-versions/{v}/report", False),
        ("get", f"/api/v1/dataset-versions/{v}/preview", False),
        ("get", f"/api/v1/dataset-versions/{v}/stats", False),
        ("get", f"/api/v1/dataset-versions/{v}/examples", False),
        ("get", f"/api/v1/dataset-versions/{v}/download", False),
    ]


def call(client, method: str, url: str):
    if method == "post":
        upload = SimpleUploadedFile("other.csv", b"text,label\nsomething else,a\nanother,b\n")
        return client.post(url, {"file": upload}, format="multipart")
    if method == "patch":
        return client.patch(url, {"name": "Renamed"}, format="json")
    return getattr(client, method)(url)


def test_charlie_gets_404_on_every_route_of_alices_dataset(charlie_client, version):
    for method, url, _write in routes(version):
        if url == "/api/v1/datasets":
            continue  # charlie's own collection
        response = call(charlie_client, method, url)
        assert response.status_code == 404, (method, url, response.status_code)
    assert charlie_client.get("/api/v1/datasets").json()["data"] == []
    assert DatasetVersion.objects.count() == 1 and Dataset.objects.get().name == "Intents"


def test_a_viewer_can_read_but_not_upload_change_or_delete(vera_client, version, media_root):
    files_before = stored_files(media_root)
    for method, url, write in routes(version):
        response = call(vera_client, method, url)
        if write:
            assert response.status_code == 403, (method, url)
            assert response.json()["error"]["code"] == "insufficient_role"
        else:
            assert response.status_code == 200, (method, url)
    assert DatasetVersion.objects.count() == 1 and Dataset.objects.get().name == "Intents"
    assert stored_files(media_root) == files_before


def test_a_member_can_upload_and_delete(bob_client, version):
    assert call(bob_client, "post", f"/api/v1/datasets/{version.dataset_id}/versions").status_code == 201
    assert bob_client.delete(f"/api/v1/dataset-versions/{version.id}").status_code == 204


def test_anonymous_requests_are_refused(anon_client, version):
    for method, url, _write in routes(version):
        assert call(anon_client, method, url).status_code in (401, 403), (method, url)


def test_the_selector_hides_other_teams_versions(version, charlie_team):
    assert dataset_version_get(team=version.team, version_id=version.id) == version
    with pytest.raises(NotFound):
        dataset_version_get(team=charlie_team, version_id=version.id)


# --- deletion ------------------------------------------------------------------------------------


def test_deleting_a_version_removes_its_row_and_files(
    alice_client, version, media_root, django_capture_on_commit_callbacks
):
    assert len(stored_files(media_root)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.delete(f"/api/v1/dataset-versions/{version.id}")
    assert response.status_code == 204
    assert not DatasetVersion.objects.exists() and Dataset.objects.exists()
    assert stored_files(media_root) == []


def _job_on(version):
    from finetune.models import BaseModel, FineTuneJob

    base = BaseModel.objects.create(
        name="tiny-encoder", display_name="Tiny", source="tiny", kind="encoder", tasks=["classification"]
    )
    return FineTuneJob.objects.create(
        team=version.team,
        base_model=base,
        dataset_version=version,
        task="classification",
        method="full",
        device_class="cpu",
        queue="cpu",
    )


def test_a_version_used_by_a_job_cannot_be_deleted(alice_client, version, media_root):
    job = _job_on(version)
    assert dataset_version_in_use(version=version) is True
    response = alice_client.delete(f"/api/v1/dataset-versions/{version.id}")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "version_in_use"
    assert f"Version {version.id} (v1) is used by" in error["message"] and job.id in error["message"]
    assert DatasetVersion.objects.filter(pk=version.id).exists()
    assert len(stored_files(media_root)) == 2


def test_a_dataset_with_a_version_in_use_cannot_be_deleted(alice_client, version, media_root):
    job = _job_on(version)
    other = DatasetVersionFactory(team=version.team, dataset=version.dataset, seed=3)
    response = alice_client.delete(f"/api/v1/datasets/{version.dataset_id}")
    assert response.status_code == 409
    assert job.id in response.json()["error"]["message"]
    assert DatasetVersion.objects.filter(pk__in=[version.id, other.id]).count() == 2
    assert len(stored_files(media_root)) == 4


def test_deleting_a_dataset_removes_every_version_and_file(
    alice_client, version, media_root, django_capture_on_commit_callbacks
):
    DatasetVersionFactory(team=version.team, dataset=version.dataset, seed=3)
    assert dataset_version_in_use(version=version) is False
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.delete(f"/api/v1/datasets/{version.dataset_id}")
    assert response.status_code == 204
    assert not Dataset.objects.exists() and not DatasetVersion.objects.exists()
    assert stored_files(media_root) == []
