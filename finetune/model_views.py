"""Web pages of fine-tuned models: the team's model list, one version's page (metrics, lineage
chain, rendered card, offline loading) and the download of all its artifacts as one zip."""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.access import membership_or_404
from common.errors import NotFound
from finetune import model_files, selectors

PAGE_SIZE = 50


def _numeric(values: dict) -> dict:
    return {
        k: v for k, v in (values or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _metric_rows(metrics: dict) -> list[tuple[str, float, float | None]]:
    """(metric, after tuning, the untuned base model's score) for each held-out metric."""
    before = _numeric(((metrics.get("baseline") or {}).get("base_model")) or {})
    return [
        (name, value, before.get(name))
        for name, value in _numeric(metrics.get("final")).items()
        if name not in ("step", "epoch")
    ]


def _version_or_404(request, version_id: str):
    membership = membership_or_404(request)
    try:
        return membership, selectors.model_version_get(team=membership.team, version_id=version_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


@require_GET
@login_required
def model_list(request):
    membership = membership_or_404(request)
    versions = selectors.model_version_list(team=membership.team).select_related(
        "job__dataset_version__dataset"
    )
    page = Paginator(versions, PAGE_SIZE).get_page(request.GET.get("page"))
    for version in page:
        version.final_metrics = _numeric((version.metrics or {}).get("final"))
    return render(request, "finetune/model_list.html", {"page": page})


def _endpoints_of(*, team, version) -> list[dict]:
    """Where the version serves, asked of the apps that serve models (finetune imports none)."""
    found: list[dict] = []
    for app_config in apps.get_app_configs():
        provider = getattr(app_config, "model_version_uses", None)
        if provider is not None:
            found.extend(provider(team=team, version_id=version.id))
    return found


@require_GET
@login_required
def model_detail(request, version_id: str):
    membership, version = _version_or_404(request, version_id)
    job = version.job
    dataset_version = job.dataset_version
    return render(
        request,
        "finetune/model_detail.html",
        {
            "version": version,
            "job": job,
            "dataset_version": dataset_version,
            "metric_rows": _metric_rows(version.metrics or {}),
            "endpoints": _endpoints_of(team=membership.team, version=version),
            "card_html": model_files.model_card_html(version=version),
            "base_source": version.base_model.source,
            "is_adapter": any(entry["path"] == "adapter_config.json" for entry in version.files),
            "total_size": sum(entry.get("size") or 0 for entry in version.files),
        },
    )


@require_GET
@login_required
def model_download(request, version_id: str):
    """All artifacts of a version as one zip, streamed while it is written."""
    _, version = _version_or_404(request, version_id)
    response = StreamingHttpResponse(
        model_files.model_version_archive(version=version), content_type="application/zip"
    )
    response["Content-Disposition"] = f'attachment; filename="{model_files.archive_name(version=version)}"'
    return response
