"""Writes on datasets: upload (validate → normalize → store → version), update and delete.

Uploads are validated completely before anything is written: a file with blocking errors leaves no
Dataset, no DatasetVersion and no stored file behind. Originals are never kept — the normalized
splits are the version's content (hashed, immutable) and the original name/format/column mapping are
recorded for provenance; this keeps unmasked personal data out of storage when masking is on and
spares storing every upload twice otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max
from django.db.models.deletion import ProtectedError
from django.utils.text import get_valid_filename
from django.utils.translation import gettext

from accounts.models import Team
from common.errors import Conflict, InvalidInput, Unprocessable
from common.models import new_public_id
from datasets_app.ingest.options import check_read_options
from datasets_app.ingest.pipeline import IngestOptions, IngestResult, Source, ingest
from datasets_app.ingest.report import IngestFailed
from datasets_app.models import Dataset, DatasetVersion, Task
from datasets_app.selectors import version_blockers
from datasets_app.token_counts import chat_model_name, token_counter_for

logger = logging.getLogger(__name__)


@dataclass
class UploadOptions(IngestOptions):
    """The ingest options a user chooses, plus the tokenizer that measures text lengths."""

    tokenizer_model: str | None = None


@dataclass
class UploadOutcome:
    dataset: Dataset
    version: DatasetVersion
    created: bool  # False when identical content already was a version of this dataset
    report: dict[str, Any]


def safe_filename(name: str | None, *, default: str = "upload") -> str:
    """The last path component, made safe for display and logs; never used to build storage paths."""
    base = os.path.basename((name or "").replace("\\", "/")) or default
    cleaned = get_valid_filename(base) if base not in (".", "..") else default
    return cleaned[:255] or default


def version_prefix(*, team_id: str, dataset_id: str, version_id: str) -> str:
    return f"teams/{team_id}/datasets/{dataset_id}/{version_id}"


def _ingest_options(options: UploadOptions, *, task: str | None, pii_masking: bool) -> IngestOptions:
    tokenizer_model = options.tokenizer_model or None
    if tokenizer_model:
        token_counter_for(tokenizer_model, task=task or Task.CLASSIFICATION)  # an unknown name is a 400 now

    def counter(detected_task: str):
        if detected_task == Task.CHAT_SFT and not tokenizer_model and chat_model_name() is None:
            # An encoder's tokenizer says nothing about how a chat model will cut these conversations.
            return (
                "conversation lengths were not checked: no chat-capable base model is registered, and the "
                "encoder's tokenizer does not measure chat data. Register one, or choose tokenizer_model."
            )
        return token_counter_for(tokenizer_model, task=detected_task)

    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(IngestOptions)}
    return IngestOptions(
        **{
            **fields,
            "task": task,
            "text_column": options.text_column or None,
            "label_column": options.label_column or None,
            "text_pair_column": options.text_pair_column or None,
            "label_names": options.label_names or None,
            "encoding": options.encoding or None,
            "delimiter": options.delimiter or None,
            "pii_masking": pii_masking,
            "max_text_chars": settings.TUNEFORGE_MAX_TEXT_CHARS,
            "max_line_bytes": settings.TUNEFORGE_MAX_LINE_BYTES,
            "token_counter": counter,
        }
    )


@contextmanager
def prepared_upload(
    *,
    file: BinaryIO,
    filename: str,
    validation_file: BinaryIO | None = None,
    validation_filename: str | None = None,
    options: IngestOptions,
) -> Iterator[IngestResult]:
    """Runs the ingestion core in a scratch folder that is removed afterwards, whatever happens.
    Blocking errors become a 422 carrying the whole report."""
    work_root = Path(settings.TUNEFORGE_WORK_DIR) / "ingest"
    work_root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="upload-", dir=work_root))
    try:
        validation = (
            Source(validation_file, safe_filename(validation_filename, default="validation"))
            if validation_file is not None
            else None
        )
        try:
            result = ingest(
                train=Source(file, safe_filename(filename)),
                validation=validation,
                options=options,
                workdir=workdir,
            )
        except IngestFailed as exc:
            raise Unprocessable(
                exc.message, code="invalid_dataset", field="file", details={"report": exc.report}
            ) from None
        yield result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def store_result(*, result: IngestResult, prefix: str, storage=None) -> tuple[str, str | None]:
    """Copies the normalized splits into storage under `prefix` (streamed in chunks)."""
    storage = storage or default_storage
    stored: list[str] = []
    try:
        with open(result.train_path, "rb") as fh:
            stored.append(storage.save(f"{prefix}/train.jsonl", File(fh, name="train.jsonl")))
        if result.validation_path is not None:
            with open(result.validation_path, "rb") as fh:
                stored.append(storage.save(f"{prefix}/validation.jsonl", File(fh, name="validation.jsonl")))
    except BaseException:
        delete_files(stored, storage=storage)
        raise
    return stored[0], (stored[1] if len(stored) > 1 else None)


def delete_files(names: list[str], *, storage=None) -> None:
    storage = storage or default_storage
    for name in names:
        if not name:
            continue
        try:
            storage.delete(name)
        except OSError:
            logger.exception("could not delete %s from storage", name)


def _validate_options(options: UploadOptions) -> None:
    if options.task is not None and options.task not in Task.values:
        raise InvalidInput(
            f"task must be one of {', '.join(Task.values)}, got {options.task!r}.", field="task"
        )
    if not 0 <= options.validation_fraction < 1:
        raise InvalidInput("validation_fraction must be at least 0 and below 1.", field="validation_fraction")
    problem = check_read_options(options)
    if problem is not None:
        raise InvalidInput(problem[1], field=problem[0])
    if options.label_names is not None:
        if not isinstance(options.label_names, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in options.label_names.items()
        ):
            raise InvalidInput(
                'label_names must be a JSON object of label → name strings, e.g. {"0": "bearish"}.',
                field="label_names",
            )


def _run_upload(
    *,
    team: Team,
    user,
    file,
    filename: str,
    validation_file,
    validation_filename: str | None,
    options: UploadOptions,
    dataset: Dataset | None,
    name: str | None,
    description: str,
) -> UploadOutcome:
    _validate_options(options)
    if dataset is not None:
        task = options.task or dataset.task
        if task != dataset.task:
            raise Conflict(
                gettext("Dataset %(name)s is a %(task)s dataset; this upload asked for %(asked)s.")
                % {"name": repr(dataset.name), "task": dataset.task, "asked": task},
                field="task",
            )
        pii = dataset.pii_masking or options.pii_masking
    else:
        task, pii = options.task, options.pii_masking
    ingest_options = _ingest_options(options, task=task, pii_masking=pii)
    source_filename = safe_filename(filename)
    source_sha256 = file_sha256(file)
    with prepared_upload(
        file=file,
        filename=filename,
        validation_file=validation_file,
        validation_filename=validation_filename,
        options=ingest_options,
    ) as result:
        stored: list[str] = []
        try:
            with transaction.atomic():
                if dataset is None:
                    # Serializes dataset creation per team, so two uploads with one name make one dataset.
                    Team.objects.select_for_update().filter(pk=team.pk).first()
                    target = Dataset.objects.filter(team=team, name=name).first()
                    if target is None:
                        target = Dataset.objects.create(
                            team=team,
                            name=name,
                            description=description,
                            task=result.task,
                            created_by=user,
                            pii_masking=pii,
                        )
                    elif target.task != result.task:
                        raise Conflict(
                            gettext(
                                "Dataset %(name)s already exists as a %(task)s dataset; this file holds "
                                "%(data)s data. Choose another name."
                            )
                            % {"name": repr(name), "task": target.task, "data": result.task},
                            field="name",
                        )
                else:
                    target = Dataset.objects.select_for_update().get(pk=dataset.pk)
                existing_version = target.versions.filter(sha256=result.sha256).first()
                if existing_version is not None:
                    return UploadOutcome(
                        dataset=target,
                        version=existing_version,
                        created=False,
                        report=existing_version.report,
                    )
                version = _store_and_insert(
                    dataset=target,
                    result=result,
                    user=user,
                    source_filename=source_filename,
                    source_sha256=source_sha256,
                    stored=stored,
                )
        except BaseException:
            delete_files(stored)
            raise
        target.refresh_from_db()
        return UploadOutcome(dataset=target, version=version, created=True, report=version.report)


def file_sha256(fileobj) -> str:
    """The sha256 of an uploaded file, read in chunks; the file is rewound for the ingest that
    follows. A stream that cannot be rewound is not hashed (empty)."""
    if not (hasattr(fileobj, "seek") and getattr(fileobj, "seekable", lambda: True)()):
        return ""
    start = fileobj.tell()
    digest = hashlib.sha256()
    while chunk := fileobj.read(1 << 20):
        digest.update(chunk)
    fileobj.seek(start)
    return digest.hexdigest()


def _store_and_insert(
    *,
    dataset: Dataset,
    result: IngestResult,
    user,
    source_filename: str,
    source_sha256: str,
    stored: list[str],
) -> DatasetVersion:
    number = (dataset.versions.aggregate(top=Max("number"))["top"] or 0) + 1
    version = DatasetVersion(
        id=new_public_id(DatasetVersion.id_prefix),
        team_id=dataset.team_id,
        dataset=dataset,
        number=number,
        sha256=result.sha256,
        task=result.task,
        status=DatasetVersion.Status.READY,
        row_count=result.row_count,
        validation_row_count=result.validation_row_count,
        labels=result.labels,
        label_counts=result.label_counts,
        report=result.report,
        column_mapping=result.column_mapping,
        source_filename=source_filename,
        source_sha256=source_sha256,
        source_format=result.source_format,
        created_by=user,
    )
    train_name, validation_name = store_result(
        result=result,
        prefix=version_prefix(team_id=dataset.team_id, dataset_id=dataset.id, version_id=version.id),
    )
    stored.extend(n for n in (train_name, validation_name) if n)
    version.normalized_file.name = train_name
    version.validation_file.name = validation_name
    version.save(force_insert=True)
    Dataset.objects.filter(pk=dataset.pk).update(updated_at=version.created_at)
    return version


def _clean_name(name: str | None, filename: str) -> str:
    name = (name or "").strip() or os.path.splitext(safe_filename(filename))[0]
    if len(name) > 200:
        raise InvalidInput(gettext("name must be at most 200 characters."), field="name")
    return name


def dataset_create_from_upload(
    *,
    team: Team,
    user,
    file,
    filename: str,
    name: str | None = None,
    description: str = "",
    validation_file=None,
    validation_filename: str | None = None,
    options: UploadOptions,
) -> UploadOutcome:
    """Validates and stores an upload as a new dataset's first version.

    If the team already has a dataset of that name (and task), the upload becomes its next version
    instead, and identical content returns the existing version with created=False.
    """
    name = _clean_name(name, filename)
    existing = Dataset.objects.filter(team=team, name=name).first()
    return _run_upload(
        team=team,
        user=user,
        file=file,
        filename=filename,
        validation_file=validation_file,
        validation_filename=validation_filename,
        options=options,
        dataset=existing,
        name=name,
        description=description,
    )


def dataset_version_create(
    *,
    team: Team,
    user,
    dataset: Dataset,
    file,
    filename: str,
    validation_file=None,
    validation_filename: str | None = None,
    options: UploadOptions,
) -> UploadOutcome:
    """Validates and stores an upload as the dataset's next version (or returns the identical one)."""
    if dataset.team_id != team.pk:
        raise InvalidInput("This dataset belongs to another team.")
    return _run_upload(
        team=team,
        user=user,
        file=file,
        filename=filename,
        validation_file=validation_file,
        validation_filename=validation_filename,
        options=options,
        dataset=dataset,
        name=None,
        description="",
    )


@transaction.atomic
def dataset_update(
    *,
    dataset: Dataset,
    name: str | None = None,
    description: str | None = None,
    pii_masking: bool | None = None,
) -> Dataset:
    """Renames or re-describes a dataset; pii_masking applies to versions uploaded from now on."""
    fields = []
    if name is not None:
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("name must be 1 to 200 characters.", field="name")
        if Dataset.objects.filter(team_id=dataset.team_id, name=name).exclude(pk=dataset.pk).exists():
            raise Conflict(f"This team already has a dataset named {name!r}.", field="name")
        dataset.name = name
        fields.append("name")
    if description is not None:
        dataset.description = description
        fields.append("description")
    if pii_masking is not None:
        dataset.pii_masking = pii_masking
        fields.append("pii_masking")
    if fields:
        dataset.save(update_fields=[*fields, "updated_at"])
    return dataset


def _blocked_message(version: DatasetVersion, blockers: list) -> str:
    names = ", ".join(f"{obj._meta.verbose_name} {obj.pk}" for obj in blockers[:5])
    more = f" and {len(blockers) - 5} more" if len(blockers) > 5 else ""
    return f"Version {version.id} (v{version.number}) is used by {names}{more}; it cannot be deleted."


def _version_files(version: DatasetVersion) -> list[str]:
    return [name for name in (version.normalized_file.name, version.validation_file.name) if name]


def dataset_version_delete(*, version: DatasetVersion) -> None:
    """Deletes a version and (after commit) its files; 409 while a job references it."""
    with transaction.atomic():
        locked = DatasetVersion.objects.select_for_update().get(pk=version.pk)
        blockers = version_blockers(version=locked)
        if blockers:
            raise Conflict(
                _blocked_message(locked, blockers),
                code="version_in_use",
                details={"used_by": [str(obj.pk) for obj in blockers]},
            )
        files = _version_files(locked)
        try:
            locked.delete()
        except ProtectedError as exc:  # a job was created between the check and the delete
            raise Conflict(
                _blocked_message(locked, list(exc.protected_objects)), code="version_in_use"
            ) from None
        transaction.on_commit(lambda: delete_files(files))


def dataset_delete(*, dataset: Dataset) -> None:
    """Deletes a dataset with all its versions and their files; 409 if any version is in use."""
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        versions = list(DatasetVersion.objects.select_for_update().filter(dataset=locked))
        in_use = [(v, b) for v in versions if (b := version_blockers(version=v))]
        if in_use:
            message = " ".join(_blocked_message(v, b) for v, b in in_use[:3])
            raise Conflict(
                f"Dataset {locked.name!r} cannot be deleted: {message}",
                code="dataset_in_use",
                details={"versions": [v.id for v, _ in in_use]},
            )
        files = [name for v in versions for name in _version_files(v)]
        try:
            locked.delete()
        except ProtectedError as exc:
            raise Conflict(
                f"Dataset {locked.name!r} cannot be deleted: a version is in use "
                f"({', '.join(str(o.pk) for o in exc.protected_objects)}).",
                code="dataset_in_use",
            ) from None
        transaction.on_commit(lambda: delete_files(files))
