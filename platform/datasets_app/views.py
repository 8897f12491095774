"""Web pages for datasets (server-rendered, over the same selectors and services as the API).

Uploading goes through the API from the browser (XMLHttpRequest, for its progress events), so the
web and API paths share one upload implementation, size limits and report.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import can_write, membership_or_404
from common.errors import ApplicationError, NotFound
from datasets_app import selectors, services
from datasets_app.models import Task
from datasets_app.token_counts import tokenizer_names

PREVIEW_PAGE = 20
EXAMPLES_PER_LABEL = 3


def _require_writer(membership) -> None:
    if not can_write(membership):
        raise PermissionDenied(_("Viewers cannot change datasets."))


def _dataset_or_404(membership, dataset_id: str):
    try:
        return selectors.dataset_get(team=membership.team, dataset_id=dataset_id)
    except NotFound:
        raise Http404(_("No such dataset in this team.")) from None


def _version_or_404(membership, version_id: str):
    try:
        return selectors.dataset_version_get(team=membership.team, version_id=version_id)
    except NotFound:
        raise Http404(_("No such dataset version in this team.")) from None


def _upload_context(membership, *, dataset=None) -> dict:
    return {
        "tasks": Task.choices,
        "upload_url": (
            reverse("api-dataset-versions", args=[dataset.pk])
            if dataset is not None
            else reverse("api-datasets")
        ),
        "version_url_template": reverse("datasets_app:version", args=["VERSION_ID"]),
        "max_upload_bytes": settings.TUNEFORGE_MAX_UPLOAD_BYTES,
        "dataset": dataset,
    }


@login_required
def dataset_list(request):
    membership = membership_or_404(request)
    datasets = selectors.with_latest_versions(list(selectors.dataset_list(team=membership.team)[:200]))
    rows = [{"dataset": d, "latest": selectors.dataset_latest_version(dataset=d)} for d in datasets]
    return render(request, "datasets/list.html", {"rows": rows, "can_write": can_write(membership)})


@login_required
def dataset_new(request):
    membership = membership_or_404(request)
    _require_writer(membership)
    return render(request, "datasets/upload.html", _upload_context(membership))


@login_required
def dataset_detail(request, dataset_id: str):
    membership = membership_or_404(request)
    dataset = _dataset_or_404(membership, dataset_id)
    versions = list(selectors.dataset_version_list(dataset=dataset).select_related("created_by"))
    context = {
        "dataset": dataset,
        "versions": versions,
        "can_write": can_write(membership),
        **_upload_context(membership, dataset=dataset),
    }
    return render(request, "datasets/detail.html", context)


def _confirmed_delete(request, *, delete, back: str, unconfirmed: str, done: str):
    """Runs `delete` when the confirmation box was ticked; a refusal (409) goes back with its reason."""
    if request.POST.get("confirm") != "yes":
        messages.error(request, unconfirmed)
        return redirect(back)
    try:
        delete()
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    messages.success(request, done)
    return None


@login_required
@require_POST
def dataset_delete(request, dataset_id: str):
    membership = membership_or_404(request)
    dataset = _dataset_or_404(membership, dataset_id)
    _require_writer(membership)
    refused = _confirmed_delete(
        request,
        delete=lambda: services.dataset_delete(dataset=dataset),
        back=reverse("datasets_app:detail", args=[dataset.pk]),
        unconfirmed=_("Tick the confirmation box to delete the dataset."),
        done=_("Dataset “%(name)s” was deleted.") % {"name": dataset.name},
    )
    return refused or redirect("datasets_app:list")


def _int_arg(request, name: str, default: int) -> int:
    try:
        return max(0, int(request.GET.get(name, default)))
    except ValueError:
        return default


def _chart_data(label_rows: list[dict], tokens: dict | None) -> dict:
    """What static/js/dataset_charts.js draws with Chart.js (read from a json_script block), with
    the legend words already in the page's language."""
    data: dict = {
        "words": {
            "training": _("training"),
            "validation": _("validation"),
            "rows": _("rows"),
            "tokens": _("tokens"),
            "limit": _("max length"),
        }
    }
    if label_rows:
        data["labels"] = {
            "names": [row["label"] for row in label_rows],
            "train": [row["train"] for row in label_rows],
            "validation": [row["validation"] for row in label_rows],
        }
    if tokens:
        bins = tokens["bins"]
        data["tokens"] = {
            "bins": [f"{b['start']}–{b['end'] - 1}" for b in bins],
            "counts": [b["count"] for b in bins],
            # The index of the bin holding the tokenizer's limit, where the chart draws its line.
            "limit_bin": next(
                (i for i, b in enumerate(bins) if b["start"] <= (tokens["max_length"] or -1) < b["end"]),
                None,
            ),
            "max_length": tokens["max_length"],
        }
    return data


@login_required
def version_detail(request, version_id: str):
    membership = membership_or_404(request)
    version = _version_or_404(membership, version_id)
    report = version.report or {}
    split = request.GET.get("split") if request.GET.get("split") in selectors.SPLITS else "train"
    offset = _int_arg(request, "offset", 0)
    preview = selectors.version_preview(version=version, split=split, offset=offset, limit=PREVIEW_PAGE)

    label_rows = selectors.version_label_distribution(version=version)

    model = request.GET.get("model") or None
    token_error = None
    try:
        tokens = selectors.version_token_lengths(version=version, model=model)
    except ApplicationError as exc:
        tokens, token_error = None, exc.message

    chosen_label = request.GET.get("label") or None
    examples = None
    if version.task != Task.CHAT_SFT:
        if chosen_label is not None and chosen_label not in version.labels:
            chosen_label = None
        examples = selectors.version_examples(
            version=version, label=chosen_label, limit=10 if chosen_label else EXAMPLES_PER_LABEL
        )

    context = {
        "version": version,
        "dataset": version.dataset,
        "report": report,
        "stats": report.get("stats") or {},
        "preview": preview,
        "preview_first": preview["offset"] + 1 if preview["data"] else 0,
        "preview_last": preview["offset"] + len(preview["data"]),
        "split": split,
        "prev_offset": max(0, offset - PREVIEW_PAGE) if offset > 0 else None,
        "label_rows": label_rows,
        "tokens": tokens,
        "chart_data": _chart_data(label_rows, tokens),
        "token_error": token_error,
        "models": tokenizer_names(),
        "chosen_model": tokens["model"] if tokens else model,
        "examples": examples,
        "chosen_label": chosen_label,
        "download_url": reverse("api-dataset-version-download", args=[version.pk]),
        "can_write": can_write(membership),
    }
    return render(request, "datasets/version.html", context)


@login_required
@require_POST
def version_delete(request, version_id: str):
    membership = membership_or_404(request)
    version = _version_or_404(membership, version_id)
    _require_writer(membership)
    refused = _confirmed_delete(
        request,
        delete=lambda: services.dataset_version_delete(version=version),
        back=reverse("datasets_app:version", args=[version.pk]),
        unconfirmed=_("Tick the confirmation box to delete the version."),
        done=_("Version %(number)s was deleted.") % {"number": version.number},
    )
    return refused or redirect("datasets_app:detail", dataset_id=version.dataset_id)
