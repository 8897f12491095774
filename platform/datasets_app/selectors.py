"""Reads about datasets, always scoped to the acting team (another team's rows are a 404)."""

from __future__ import annotations

from django.db import router
from django.db.models import Count, Max, QuerySet, Sum
from django.db.models.deletion import Collector, ProtectedError, RestrictedError

from common.errors import NotFound
from datasets_app.models import Dataset, DatasetVersion


def dataset_list(*, team) -> QuerySet[Dataset]:
    return (
        Dataset.objects.filter(team=team)
        .annotate(
            version_count=Count("versions", distinct=True),
            last_version_at=Max("versions__created_at"),
        )
        .order_by("-created_at", "-pk")
    )


def dataset_get(*, team, dataset_id: str) -> Dataset:
    dataset = Dataset.objects.filter(team=team, pk=dataset_id).first()
    if dataset is None:
        raise NotFound(f"No dataset {dataset_id!r} in this team.", field="id")
    return dataset


def dataset_latest_version(*, dataset: Dataset) -> DatasetVersion | None:
    return dataset.versions.order_by("-number").first()


def dataset_version_list(*, dataset: Dataset) -> QuerySet[DatasetVersion]:
    return DatasetVersion.objects.filter(team_id=dataset.team_id, dataset=dataset)


def dataset_version_get(*, team, version_id: str) -> DatasetVersion:
    version = DatasetVersion.objects.select_related("dataset").filter(team=team, pk=version_id).first()
    if version is None:
        raise NotFound(f"No dataset version {version_id!r} in this team.", field="id")
    return version


def version_blockers(*, version: DatasetVersion) -> list:
    """The rows that protect `version` from deletion (e.g. fine-tuning jobs that train on it).

    Django's deletion collector walks every reverse relation with on_delete=PROTECT/RESTRICT and
    raises without deleting anything, so this needs no knowledge of the apps that point at versions.
    """
    collector = Collector(using=router.db_for_write(DatasetVersion))
    try:
        collector.collect([version])
    except ProtectedError as exc:
        return list(exc.protected_objects)
    except RestrictedError as exc:
        return list(exc.restricted_objects)
    return []


def dataset_version_in_use(*, version: DatasetVersion) -> bool:
    return bool(version_blockers(version=version))


def dataset_totals(*, team) -> dict:
    datasets = Dataset.objects.filter(team=team)
    versions = DatasetVersion.objects.filter(team=team)
    return {
        "datasets": datasets.count(),
        "versions": versions.count(),
        "rows": versions.aggregate(total=Sum("row_count"))["total"] or 0,
    }
