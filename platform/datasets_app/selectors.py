"""Reads about datasets, always scoped to the acting team (another team's rows are a 404)."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from django.core.cache import cache
from django.db import router
from django.db.models import Count, Max, OuterRef, QuerySet, Subquery, Sum
from django.db.models.deletion import Collector, ProtectedError, RestrictedError

from common.errors import InvalidInput, NotFound
from datasets_app.ingest.export import histogram, iter_rows, percentile, row_labels, row_text
from datasets_app.models import Dataset, DatasetVersion, Task

logger = logging.getLogger(__name__)


def dataset_list(*, team) -> QuerySet[Dataset]:
    newest = DatasetVersion.objects.filter(dataset=OuterRef("pk")).order_by("-number").values("pk")[:1]
    return (
        Dataset.objects.filter(team=team)
        .annotate(
            version_count=Count("versions", distinct=True),
            last_version_at=Max("versions__created_at"),
            latest_version_id=Subquery(newest),
        )
        .order_by("-created_at", "-pk")
    )


def with_latest_versions(datasets: list[Dataset]) -> list[Dataset]:
    """Attach each listed dataset's newest version with one query for the whole page, not one each."""
    by_id = DatasetVersion.objects.in_bulk([d.latest_version_id for d in datasets if d.latest_version_id])
    for dataset in datasets:
        dataset.latest_version = by_id.get(dataset.latest_version_id)
    return datasets


def dataset_get(*, team, dataset_id: str) -> Dataset:
    dataset = Dataset.objects.filter(team=team, pk=dataset_id).first()
    if dataset is None:
        raise NotFound(f"No dataset {dataset_id!r} in this team.", field="id")
    return dataset


def dataset_latest_version(*, dataset: Dataset) -> DatasetVersion | None:
    if hasattr(dataset, "latest_version"):  # attached by with_latest_versions()
        return dataset.latest_version
    return dataset.versions.order_by("-number").first()


def dataset_version_list(*, dataset: Dataset) -> QuerySet[DatasetVersion]:
    return DatasetVersion.objects.filter(team_id=dataset.team_id, dataset=dataset)


def team_version_list(*, team) -> QuerySet[DatasetVersion]:
    """Every version of every dataset of the team, newest first (the OpenAI face lists them as files)."""
    return DatasetVersion.objects.select_related("dataset").filter(team=team).order_by("-created_at", "-pk")


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


# --- reading a version's stored rows ---------------------------------------------------------------

SPLITS = ("train", "validation")
PREVIEW_MAX_LIMIT = 100
EXAMPLES_MAX_LIMIT = 100
TOKEN_SAMPLE_ROWS = 2000


def split_file(version: DatasetVersion, split: str):
    if split not in SPLITS:
        raise InvalidInput(f"split must be 'train' or 'validation', got {split!r}.", field="split")
    field_file = version.normalized_file if split == "train" else version.validation_file
    return field_file if field_file and field_file.name else None


@contextmanager
def open_split(*, version: DatasetVersion, split: str) -> Iterator[BinaryIO | None]:
    """The stored JSONL of one split, opened for reading (None when the split is empty)."""
    field_file = split_file(version, split)
    if field_file is None:
        yield None
        return
    with field_file.storage.open(field_file.name, "rb") as fh:
        yield fh


def split_row_count(version: DatasetVersion, split: str) -> int:
    return version.row_count if split == "train" else version.validation_row_count


def version_preview(*, version: DatasetVersion, split: str, offset: int, limit: int) -> dict:
    """Rows [offset, offset + limit) of a split. Rows have no ids, so paging is by row offset."""
    if offset < 0:
        raise InvalidInput("offset must be 0 or more.", field="offset")
    if not 1 <= limit <= PREVIEW_MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {PREVIEW_MAX_LIMIT}.", field="limit")
    total = split_row_count(version, split)
    rows = []
    with open_split(version=version, split=split) as fh:
        if fh is not None:
            for index, row in enumerate(iter_rows(fh)):
                if index >= offset + limit:
                    break
                if index >= offset:
                    rows.append({"row": index + 1, **row})
    end = offset + len(rows)
    return {
        "object": "list",
        "split": split,
        "data": rows,
        "offset": offset,
        "limit": limit,
        "total": total,
        "has_more": end < total,
        "next_offset": end if end < total else None,
    }


def version_examples(*, version: DatasetVersion, label: str | None, limit: int) -> dict[str, list[dict]]:
    """Up to `limit` training rows for `label`, or for every label when `label` is None."""
    if version.task == Task.CHAT_SFT:
        raise InvalidInput("Chat datasets have no labels to show examples for.", field="label")
    if not 1 <= limit <= EXAMPLES_MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {EXAMPLES_MAX_LIMIT}.", field="limit")
    if label is not None and label not in version.labels:
        raise InvalidInput(f"Label {label!r} is not in this version.", field="label")
    wanted = [label] if label is not None else list(version.label_counts)
    examples: dict[str, list[dict]] = {name: [] for name in wanted}
    open_labels = set(wanted)
    with open_split(version=version, split="train") as fh:
        if fh is not None:
            for row in iter_rows(fh):
                for name in row_labels(row):
                    if name in open_labels:
                        examples[name].append(row)
                        if len(examples[name]) >= limit:
                            open_labels.discard(name)
                if not open_labels:
                    break
    return examples


def _sample_texts(version: DatasetVersion, *, rows: int, seed: int = 0) -> list[str]:
    """A reservoir sample of the training texts (all of them when there are fewer than `rows`)."""
    rng = random.Random(seed)
    sample: list[str] = []
    with open_split(version=version, split="train") as fh:
        if fh is None:
            return sample
        for index, row in enumerate(iter_rows(fh)):
            if index < rows:
                sample.append(row_text(row))
            else:
                slot = rng.randint(0, index)
                if slot < rows:
                    sample[slot] = row_text(row)
    return sample


def version_token_lengths(*, version: DatasetVersion, model: str | None) -> dict:
    """Token-length histogram of (a sample of) the training texts for `model`'s tokenizer; cached,
    since versions never change."""
    from datasets_app.token_counts import token_counter_for

    counter = token_counter_for(model or None, task=version.task)
    key = f"datasets:token-lengths:v1:{version.pk}:{counter.name}"
    cached = _cache_get(key)
    if cached is not None:
        return cached
    texts = _sample_texts(version, rows=TOKEN_SAMPLE_ROWS)
    lengths: list[int] = []
    for start in range(0, len(texts), 256):
        lengths.extend(counter.lengths(texts[start : start + 256]))
    ordered = sorted(lengths)
    result = {
        "model": counter.name,
        "max_length": counter.max_length,
        "sampled": len(lengths),
        "total": version.row_count,
        "too_long_in_sample": sum(1 for n in lengths if n > counter.max_length),
        "p50": percentile(ordered, 0.5),
        "p95": percentile(ordered, 0.95),
        "max": ordered[-1] if ordered else 0,
        "bins": histogram(lengths),
    }
    _cache_set(key, result, timeout=7 * 24 * 3600)
    return result


# The cache only saves work: when its server is unreachable, compute and serve without it.
def _cache_get(key: str):
    try:
        return cache.get(key)
    except Exception as exc:  # noqa: BLE001 - each backend raises its own connection errors
        logger.warning("cache unavailable (%s); computing %s without it", exc, key)
        return None


def _cache_set(key: str, value, *, timeout: int) -> None:
    try:
        cache.set(key, value, timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        logger.warning("cache unavailable (%s); %s not stored", exc, key)


def version_label_distribution(*, version: DatasetVersion) -> list[dict]:
    val_counts = (version.report.get("stats") or {}).get("validation_label_counts") or {}
    # jsonb does not keep key order: sort here, most frequent first.
    labels = set(version.label_counts) | set(val_counts)
    rows = [
        {"label": name, "train": version.label_counts.get(name, 0), "validation": val_counts.get(name, 0)}
        for name in labels
    ]
    return sorted(rows, key=lambda r: (-r["train"], -r["validation"], r["label"]))
