"""The ingestion core: parse → validate → normalize → (mask) → split → write, streaming, Django-free.

`ingest()` reads the uploaded file(s) once, record by record (parsers per format: `delimited` for
CSV/TSV/any delimiter, `jsonfiles` for JSONL/JSON/Alpaca), writing normalized JSONL rows to a scratch
file and keeping only a few machine words per row for the checks that need the whole data set
(`checks`: duplicates, leakage, conflicts, label counts and the grouped stratified split). A second
sequential pass (`output`) writes the final training and validation files and their sha256.
Nothing here touches the database or the storage backend; the caller stores the result.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from datasets_app.ingest import checks
from datasets_app.ingest.checks import grouped_split, stratified_split
from datasets_app.ingest.delimited import DelimitedParser, Requote
from datasets_app.ingest.jsonfiles import JsonParser
from datasets_app.ingest.options import (
    CHAT,
    MULTILABEL,
    TASKS,
    IngestOptions,
    IngestResult,
    Source,
    TokenCounter,
    check_read_options,
)
from datasets_app.ingest.output import content_sha256, write_splits
from datasets_app.ingest.report import FatalIngestError, Report
from datasets_app.ingest.rows import Labels, Part
from datasets_app.ingest.sniff import encoding_label, sniff

__all__ = [
    "IngestOptions",
    "IngestResult",
    "Source",
    "TokenCounter",
    "content_sha256",
    "grouped_split",
    "ingest",
    "stratified_split",
]


def parse_source(
    source: Source, *, role: str, options: IngestOptions, report: Report, labels: Labels, workdir: Path, task
) -> Part:
    kind = sniff(
        source.fileobj,
        source.filename,
        encoding=options.encoding or None,
        delimiter=options.delimiter or None,
        quoting=options.quoting,
    )
    parser_class = DelimitedParser if kind.format in ("csv", "tsv") else JsonParser
    before = report.snapshot()
    arguments = dict(source=source, role=role, options=options, report=report, labels=labels, workdir=workdir)
    try:
        return parser_class(kind=kind, task=task, **arguments).parse()
    except Requote as exc:
        report.restore(before)
        kind = dataclasses.replace(kind, quoting="none", quoting_reason=exc.reason)
        return parser_class(kind=kind, task=task, **arguments).parse()


def parse_all(
    train: Source,
    validation: Source | None,
    options: IngestOptions,
    report: Report,
    labels: Labels,
    workdir: Path,
) -> tuple[Part, Part | None]:
    shared = dict(options=options, report=report, labels=labels, workdir=workdir)
    try:
        train_part = parse_source(train, role="train", task=options.task, **shared)
    except FatalIngestError as exc:
        report.error(exc.message, file=train.filename, code=exc.code, line=exc.line, field=exc.field)
        raise report.failure() from None
    val_part = None
    if validation is not None:
        try:
            val_part = parse_source(validation, role="validation", task=train_part.task, **shared)
        except FatalIngestError as exc:
            report.error(exc.message, file=validation.filename, code=exc.code, line=exc.line, field=exc.field)
    if report.error_count:
        raise report.failure()
    return train_part, val_part


def _check_options(options: IngestOptions) -> None:
    if options.task is not None and options.task not in TASKS:
        raise ValueError(f"unknown task {options.task!r}")
    if not 0 <= options.validation_fraction < 1:
        raise ValueError("validation_fraction must be in [0, 1)")
    problem = check_read_options(options)
    if problem is not None:
        raise ValueError(problem[1])


def ingest(
    *, train: Source, validation: Source | None, options: IngestOptions, workdir: Path
) -> IngestResult:
    """Validates and normalizes an upload into `workdir`; raises `IngestFailed` with the report when
    any blocking error is found (the caller must then store nothing)."""
    _check_options(options)
    report, labels = Report(), Labels()
    train_part, val_part = parse_all(train, validation, options, report, labels, workdir)
    task, multilabel = train_part.task, train_part.task == MULTILABEL
    split = checks.make_split(train_part, val_part, options)
    train_counts: dict[str, int] = {}
    val_counts: dict[str, int] = {}
    if task != CHAT:
        train_counts = checks.label_counts(split.keys, split.selected, labels.keys, multilabel)
        val_counts = (
            checks.label_counts(split.val_keys, split.val_keep, labels.keys, multilabel)
            if val_part is not None
            else checks.label_counts(split.keys, split.moved, labels.keys, multilabel)
        )
        checks.label_checks(report, train_part, train_counts)
        if report.error_count:
            raise report.failure()
    checks.find_problems(split)

    train_path, val_path = workdir / "train.jsonl", workdir / "validation.jsonl"
    wanted = {(part.role, i) for rows in split.samples.values() for part, i in rows}
    train_sha, val_sha, n_train, n_val, texts = write_splits(split.flags(), train_path, val_path, wanted)
    for part in (train_part, val_part):
        if part is not None:
            os.unlink(part.path)
    if n_val == 0:
        os.unlink(val_path)

    parts = [train_part] + ([val_part] if val_part is not None else [])
    checks.read_warnings(report, parts)
    checks.problem_warnings(report, split, texts, options)
    _split_warnings(report, options, val_part, n_val, train_counts, val_counts)
    token_stats = checks.token_stats(report, split, texts)
    report.stats = _stats(split, options, n_train, n_val, train_counts, val_counts, token_stats)
    mapping = dict(train_part.mapping)
    if val_part is not None:
        mapping["validation"] = val_part.mapping
    return IngestResult(
        task=task,
        source_format=train_part.kind.format,
        column_mapping=mapping,
        train_path=train_path,
        validation_path=val_path if n_val else None,
        row_count=n_train,
        validation_row_count=n_val,
        labels=sorted(set(train_counts) | set(val_counts)),
        label_counts=train_counts,
        validation_label_counts=val_counts,
        sha256=content_sha256(train_sha, val_sha if n_val else None),
        report=report.as_dict(),
    )


def _split_warnings(
    report: Report, options, val_part, n_val: int, train_counts: dict, val_counts: dict
) -> None:
    if n_val == 0:
        few = options.validation_fraction > 0 and not val_part
        report.warn(
            "no_validation",
            f"the validation split is empty{' (too few rows for the chosen fraction)' if few else ''}.",
            count=0,
            params={"variant": "few"} if few else {},
        )
    only_val = sorted(set(val_counts) - set(train_counts))
    if only_val:
        report.warn(
            "validation_only_labels",
            f"{len(only_val)} label(s) occur only in the validation data: {', '.join(only_val[:20])}.",
            count=len(only_val),
            params={"n": len(only_val), "labels": ", ".join(only_val[:20])},
            labels=only_val[:20],
        )


def _stats(split, options, n_train, n_val, train_counts, val_counts, token_stats) -> dict:
    train, val = split.train, split.val
    n_dups = split.counts.get("duplicates", 0)
    return {
        "format": train.kind.format,
        "delimiter": train.kind.delimiter,
        "quoting": train.kind.quoting if train.kind.format in ("csv", "tsv") else None,
        "encoding": train.kind.encoding,
        "encoding_name": encoding_label(train.kind.encoding),
        "encoding_detected": train.kind.encoding_source == "detected",
        "source_rows": train.rows + (val.rows if val else 0),
        "rows": n_train,
        "validation_rows": n_val,
        "labels": len(train_counts),
        "label_counts": train_counts,
        "validation_label_counts": val_counts,
        "duplicates": n_dups,
        "duplicates_removed": (n_dups + split.counts.get("validation_duplicates", 0))
        if options.deduplicate
        else 0,
        "leakage": split.counts.get("leakage", 0),
        "conflicting_labels": split.counts.get("conflicting_labels", 0),
        "train_validation_conflicts": split.counts.get("train_validation_conflicts", 0),
        "split": split.method,
        "tokens": token_stats,
    }
