"""Tiny training inputs for job tests: the engine tests' tiny random BERT (real transformers files,
trained for real in seconds on a CPU, no downloads) and dataset versions made by the real upload service."""

from __future__ import annotations

import csv
import io

from finetune.engine.vocabulary import Task
from tests.engine.tiny_models import BANKING_TEST, BANKING_TRAIN, banking_rows, build_tiny_bert

__all__ = ["BANKING_TEST", "BANKING_TRAIN", "banking_rows", "build_tiny_bert"]


def _csv(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "label"])
    writer.writerows([row["text"], row["label"]] for row in rows)
    return out.getvalue().encode()


def make_dataset_version(
    team,
    *,
    n_train: int = 80,
    n_valid: int = 16,
    name: str = "banking",
    status: str = "ready",
    repeat: int = 1,
):
    """A classification dataset version made by the datasets app's own upload service from the
    Banking77 sample (`n_valid` rows of its test split as the validation file; `repeat` copies the
    training rows, for long epochs). `status` other than ready is set afterwards, for refusal tests."""
    from django.core.files.base import ContentFile

    from datasets_app.models import DatasetVersion
    from datasets_app.services import UploadOptions, dataset_create_from_upload

    train = ContentFile(_csv(banking_rows()[:n_train] * repeat), name="train.csv")
    valid = ContentFile(_csv(banking_rows(BANKING_TEST)[:n_valid]), name="valid.csv") if n_valid else None
    outcome = dataset_create_from_upload(
        team=team,
        user=None,
        file=train,
        filename="train.csv",
        name=name,
        validation_file=valid,
        validation_filename="valid.csv" if valid else None,
        options=UploadOptions(task=Task.CLASSIFICATION, validation_fraction=0.0),
    )
    version = outcome.version
    if status != DatasetVersion.Status.READY:
        DatasetVersion.objects.filter(pk=version.pk).update(status=status)
        version.refresh_from_db()
    return version
