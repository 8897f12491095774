"""Reads for looking at runs: the job page's chart series, its events without the per-step metric
lines, the confusion matrix and per-class scores of a finished classification job, its
misclassified validation examples, and the comparison of 2–5 runs. Scoped like every selector:
the caller passes a job it already got through `selectors.job_get*`, or the team."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from django.core.files.storage import default_storage
from django.core.paginator import Page, Paginator

from common.errors import InvalidInput, NotFound
from finetune.engine.halving import planned_rungs
from finetune.engine.predictions import FILENAME as PREDICTIONS_FILE
from finetune.engine.vocabulary import Task
from finetune.models import FineTuneJob, JobEvent, MetricPoint, SearchTrial
from finetune.selectors import job_list, job_search_trial_list

# The evaluation metric drawn next to the validation loss, per task.
MAIN_METRIC = {
    Task.CLASSIFICATION: "valid_accuracy",
    Task.MULTILABEL_CLASSIFICATION: "valid_f1_macro",
    Task.CHAT_SFT: "valid_token_accuracy",
}
# A chart of more points than this draws no better; long runs are thinned evenly for the first
# render (live updates then add every new point).
MAX_CHART_POINTS = 2000
COMPARE_MIN, COMPARE_MAX = 2, 5
HEAT_BUCKETS = 6  # CSS classes heat-0 .. heat-5
TOP_PAIRS = 10
MISCLASSIFIED_PER_PAGE = 20


def main_metric(job: FineTuneJob) -> str:
    return MAIN_METRIC.get(job.task, "valid_accuracy")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _thin(rows: list, limit: int) -> list:
    """At most `limit` rows, evenly spaced, always keeping the last one."""
    if len(rows) <= limit:
        return rows
    stride = math.ceil(len(rows) / limit)
    kept = rows[::stride]
    return kept if kept[-1] is rows[-1] else [*kept, rows[-1]]


# --- charts -------------------------------------------------------------------------------------


def job_chart_points(
    *, job: FineTuneJob, after_train_step: int | None = None, after_eval_step: int | None = None
) -> dict:
    """The chart series of a job: train [[step, train_loss, learning_rate]], eval [[step,
    valid_loss, main metric]], and the last step of each (the cursors of the next update). Only
    the scalars are read from the database, never the confusion matrices the eval points carry."""
    metric = main_metric(job)
    train_qs = MetricPoint.objects.filter(job=job, kind=MetricPoint.Kind.TRAIN)
    eval_qs = MetricPoint.objects.filter(job=job, kind=MetricPoint.Kind.EVAL)
    if after_train_step is not None:
        train_qs = train_qs.filter(step__gt=after_train_step)
    if after_eval_step is not None:
        eval_qs = eval_qs.filter(step__gt=after_eval_step)
    train = [
        [step, _number(loss), _number(lr)]
        for step, loss, lr in train_qs.order_by("step").values_list(
            "step", "values__train_loss", "values__learning_rate"
        )
    ]
    evals = [
        [step, _number(loss), _number(value)]
        for step, loss, value in eval_qs.order_by("step").values_list(
            "step", "values__valid_loss", f"values__{metric}"
        )
    ]
    return {
        "main_metric": metric,
        "train": _thin(train, MAX_CHART_POINTS) if after_train_step is None else train,
        "eval": evals,
        "last_train_step": train[-1][0] if train else after_train_step,
        "last_eval_step": evals[-1][0] if evals else after_eval_step,
    }


# --- the budgeted search -----------------------------------------------------------------------


def job_has_search(job: FineTuneJob) -> bool:
    return bool((job.hyperparameters or {}).get("search"))


def job_search_trials(*, job: FineTuneJob) -> dict | None:
    """The search of a job with `hyperparameters.search`: its trials (one row per trial and rung,
    the winner marked) and each row's curves for job_charts.js: train [[step, train_loss]] and
    eval [[step, the metric that ranks the trials]]. None for a job without a search."""
    if not job_has_search(job):
        return None
    rows = list(job_search_trial_list(job=job))
    series = []
    for t in rows:
        metric = t.metric or main_metric(job)
        series.append(
            {
                "trial": t.trial,
                "rung": t.rung,
                "label": f"#{t.trial} r{t.rung} {t.method} {t.learning_rate:.2g}",
                "winner": t.winner,
                "train": _thin(
                    [[p.get("step"), _number(p.get("train_loss"))] for p in t.curve], MAX_CHART_POINTS
                ),
                "eval": [[p.get("step"), _number(p.get(metric))] for p in t.eval_curve],
            }
        )
    winner = next((t for t in rows if t.winner), None)
    config = job.hyperparameters["search"]
    return {
        "config": config,
        "trials": rows,
        "winner": winner,
        "metric": rows[0].metric if rows else main_metric(job),
        "chart": {"series": series},
        "progress": _search_progress(rows=rows, trials=int(config.get("trials") or 0))
        if winner is None and not job.is_terminal
        else None,
    }


def _search_progress(*, rows: list, trials: int) -> dict | None:
    """How far a running search is, while the job's own progress (the full run's steps) stays at 0:
    trial steps done over the steps of every planned rung (each rung's trials train twice the
    previous rung's steps), and trial runs done over planned. A trial skipped or cut by the budget
    counts its planned steps as done. None before the first trial starts."""
    Status = SearchTrial.Status
    first = next((t.planned_steps for t in rows if t.rung == 0 and t.planned_steps), None)
    if not first or trials < 2:
        return None
    rungs = planned_rungs(trials)
    planned_steps = sum(n * first * 2**rung for rung, n in enumerate(rungs))
    done = sum(
        t.planned_steps
        if t.status in (Status.SKIPPED, Status.BUDGET_EXHAUSTED)
        else min(t.steps, t.planned_steps)
        for t in rows
    )
    return {
        "percent": min(99.9, 100.0 * done / planned_steps),
        "runs_done": sum(1 for t in rows if t.status != Status.RUNNING),
        "runs_planned": sum(rungs),
        "rung": max(t.rung for t in rows),
        "rungs": len(rungs),
    }


# --- the kept checkpoint ------------------------------------------------------------------------


def job_kept_checkpoint(*, job: FineTuneJob) -> dict | None:
    """Which step's weights a succeeded job exported and why, from its model version's metrics
    (`kept`, written by the engine): the step, the metric and value that chose it, the last step
    trained, the steps planned, and why training stopped (`stop_reason`: `early_stopping` after
    `patience` evaluations without improvement, or `planned_steps`). None before the job succeeded
    or without a validation set (nothing to choose by: the last step's weights are exported)."""
    version = getattr(job, "model_version", None)
    kept = (version.metrics or {}).get("kept") if version is not None else None
    if not isinstance(kept, dict) or kept.get("step") is None:
        return None
    hp = job.resolved_hyperparameters or {}
    # Versions made before the engine wrote `planned_steps`/`patience` take them from the job.
    last, planned = kept.get("last_step", job.step), kept.get("planned_steps") or job.total_steps or None
    # Patience that runs out on the very last step ended nothing early: every planned step ran.
    stopped_early = bool(kept.get("stopped_early")) and (planned is None or last < planned)
    return {
        "step": kept["step"],
        "metric": kept.get("metric"),
        "value": _number(kept.get("value")),
        "reason": kept.get("reason") or "last",
        "last_step": last,
        "planned_steps": planned,
        "stop_reason": "early_stopping" if stopped_early else "planned_steps",
        "patience": kept.get("patience", hp.get("early_stopping_patience")),
        # Evaluations before this step did not count toward patience (0 or None: all did).
        "patience_from_step": kept.get("patience_from_step", hp.get("early_stopping_start_step")),
    }


# --- events -------------------------------------------------------------------------------------


def job_page_events(*, job: FineTuneJob, after_id: int | None = None, limit: int = 60) -> list[JobEvent]:
    """The newest `limit` events after `after_id`, oldest first, without the per-step metric
    summaries (those are the charts)."""
    events = JobEvent.objects.filter(job=job).exclude(type=JobEvent.Type.METRICS)
    if after_id is not None:
        events = events.filter(pk__gt=after_id)
    return list(events.order_by("-id")[:limit])[::-1]


# --- results of a finished classification job ---------------------------------------------------


@dataclass
class HeatCell:
    count: int
    bucket: int
    diagonal: bool
    predicted: str


@dataclass
class HeatRow:
    label: str
    cells: list[HeatCell]
    total: int


def _final_metrics(job: FineTuneJob) -> dict:
    version = getattr(job, "model_version", None)
    return ((version.metrics or {}).get("final") or {}) if version is not None else {}


def _per_class_rows(final: dict, labels: list[str]) -> list[dict]:
    per_class = final.get("valid_per_class") or {}
    return [
        {
            "label": label,
            "precision": per_class[label].get("precision"),
            "recall": per_class[label].get("recall"),
            "f1": per_class[label].get("f1"),
            "support": per_class[label].get("support"),
        }
        for label in labels
        if isinstance(per_class.get(label), dict)
    ]


def job_results(*, job: FineTuneJob) -> dict | None:
    """Confusion matrix (labels ordered by how often they are confused, most first), the most
    confused (true, predicted) pairs and the per-class precision/recall/F1 of a succeeded
    classification job (multi-label: the per-class scores only, its matrices are per label);
    None for any other job."""
    version = getattr(job, "model_version", None)
    final = _final_metrics(job)
    if version is None:
        return None
    labels = list(version.labels)
    if job.task == Task.MULTILABEL_CLASSIFICATION:
        classes = _per_class_rows(final, labels)
        return {"rows": None, "per_class": classes} if classes else None
    matrix = final.get("valid_confusion_matrix")
    if job.task != Task.CLASSIFICATION or not isinstance(matrix, list):
        return None
    n = len(labels)
    if len(matrix) != n or any(len(row) != n for row in matrix):
        return None
    row_totals = [sum(row) for row in matrix]
    errors = [
        (row_totals[i] - matrix[i][i]) + (sum(matrix[r][i] for r in range(n)) - matrix[i][i])
        for i in range(n)
    ]
    order = sorted(range(n), key=lambda i: (-errors[i], labels[i]))
    rows = []
    for i in order:
        cells = []
        for j in order:
            count = matrix[i][j]
            share = count / row_totals[i] if row_totals[i] else 0.0
            bucket = 0 if count == 0 else min(HEAT_BUCKETS - 1, 1 + int(share * (HEAT_BUCKETS - 1)))
            cells.append(HeatCell(count=count, bucket=bucket, diagonal=i == j, predicted=labels[j]))
        rows.append(HeatRow(label=labels[i], cells=cells, total=row_totals[i]))
    pairs = sorted(
        (
            {"label": labels[i], "predicted": labels[j], "count": matrix[i][j]}
            for i in range(n)
            for j in range(n)
            if i != j and matrix[i][j]
        ),
        key=lambda p: (-p["count"], p["label"], p["predicted"]),
    )[:TOP_PAIRS]
    return {
        "labels": [labels[i] for i in order],
        "rows": rows,
        "pairs": pairs,
        "per_class": _per_class_rows(final, labels),
        "n_validation": sum(row_totals),
        "n_wrong": sum(row_totals) - sum(matrix[i][i] for i in range(n)),
    }


def job_validation_predictions(*, job: FineTuneJob) -> list[dict] | None:
    """The rows of the job's stored `validation_predictions.jsonl` (None when its model version
    has no such file: another task, no validation data, or a version from before the file existed)."""
    version = getattr(job, "model_version", None)
    if version is None or not any(f.get("path") == PREDICTIONS_FILE for f in version.files or []):
        return None
    with default_storage.open(f"{version.storage_prefix}/{PREDICTIONS_FILE}", "rb") as fh:
        return [json.loads(line) for line in fh.read().decode("utf-8").splitlines() if line.strip()]


def job_misclassified(
    *, job: FineTuneJob, page: Any = 1, per_page: int = MISCLASSIFIED_PER_PAGE
) -> Page | None:
    """One page of the validation rows the final model got wrong, the most confident mistakes first."""
    rows = job_validation_predictions(job=job)
    if rows is None:
        return None
    wrong = sorted(
        (row for row in rows if row.get("predicted") != row.get("label")),
        key=lambda row: (-(row.get("score") or 0.0), row.get("index", 0)),
    )
    return Paginator(wrong, per_page).get_page(page)


# --- compare runs -------------------------------------------------------------------------------


def parse_job_ids(raw: list[str]) -> list[str]:
    """Job ids from `?ids=a,b` and/or repeated `?ids=a&ids=b`, deduplicated in order."""
    ids: list[str] = []
    for value in raw:
        for part in value.split(","):
            part = part.strip()
            if part and part not in ids:
                ids.append(part)
    return ids


def _spec_of(job: FineTuneJob) -> dict[str, Any]:
    return {
        "base_model": job.base_model.name,
        "dataset_version": job.dataset_version_id,
        "task": job.task,
        "method": job.method,
        "seed": job.seed,
        "max_steps": job.max_steps,
        "device_class": job.device_class,
        **(job.resolved_hyperparameters or job.hyperparameters or {}),
    }


def _scalar_final(job: FineTuneJob) -> dict[str, float]:
    final = _final_metrics(job)
    if not final:  # no model version (yet): the latest evaluation stands in
        point = MetricPoint.objects.filter(job=job, kind=MetricPoint.Kind.EVAL).order_by("-step").first()
        final = point.values if point is not None else {}
    return {k: float(v) for k, v in final.items() if k != "epoch" and _number(v) is not None}


def job_compare(*, team, job_ids: list[str]) -> dict:
    """2–5 of the team's jobs side by side: their chart series, final metrics, and only the spec
    values and hyperparameters that differ between them. Another team's id is a 404."""
    if not COMPARE_MIN <= len(job_ids) <= COMPARE_MAX:
        raise InvalidInput(
            f"Choose {COMPARE_MIN} to {COMPARE_MAX} jobs to compare; got {len(job_ids)}.",
            code="compare_count",
            field="ids",
        )
    found = {job.id: job for job in job_list(team=team).filter(pk__in=job_ids)}
    for job_id in job_ids:
        if job_id not in found:
            raise NotFound(f"No fine-tuning job {job_id!r} in this team.", code="job_not_found", field="ids")
    jobs = [found[job_id] for job_id in job_ids]
    specs = [_spec_of(job) for job in jobs]
    keys = sorted({k for spec in specs for k in spec})
    differing = {
        key: [spec.get(key) for spec in specs]
        for key in keys
        if len({json.dumps(spec.get(key), sort_keys=True, default=str) for spec in specs}) > 1
    }
    finals = [_scalar_final(job) for job in jobs]
    metric_names = sorted({k for final in finals for k in final if k != "step"})
    return {
        "jobs": jobs,
        "series": [{"job": job.id, **job_chart_points(job=job)} for job in jobs],
        "metrics": {name: [final.get(name) for final in finals] for name in metric_names},
        "differing": differing,
    }
