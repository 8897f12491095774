"""Web pages of quotas and usage: the usage page (team-scoped; staff see every team, with a team
filter) with its CSV export, and the staff page where platform admins set each team's quotas."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.access import membership_or_404
from accounts.models import Team
from common.errors import ApplicationError
from serving import quota_policies, usage


def _usage_scope(request) -> tuple[list[str], list[Team], str]:
    """(team ids to read, teams a staff user may filter by, the chosen team filter)."""
    if request.user.is_staff:
        teams = list(Team.objects.order_by("name"))
        chosen = request.GET.get("team") or (request.membership.team.pk if request.membership else "all")
        if chosen == "all":
            return [t.pk for t in teams], teams, chosen
        if not any(t.pk == chosen for t in teams):
            raise Http404(_("No such team."))
        return [chosen], teams, chosen
    membership = membership_or_404(request)
    return [membership.team.pk], [], membership.team.pk


def _rows(request):
    team_ids, teams, chosen = _usage_scope(request)
    filters = usage.usage_filters_from(request.GET)
    return usage.usage_rows(team_ids=team_ids, filters=filters), filters, teams, chosen


@require_GET
@login_required
def usage_page(request):
    error = None
    try:
        rows, filters, teams, chosen = _rows(request)
    except ApplicationError as exc:
        error = exc.message
        rows, teams, chosen = [], [], ""
        filters = usage.usage_filters_from({})
    budget_team = None
    if chosen and chosen != "all":
        budget_team = Team.objects.filter(pk=chosen).first()
    return render(
        request,
        "serving/usage.html",
        {
            "rows": rows,
            "filters": filters,
            "totals": usage.usage_totals(rows),
            "chart": usage.usage_chart_data(rows, granularity=filters.granularity),
            "ranges": list(usage.RANGES),
            "granularities": usage.GRANULARITIES,
            "range": request.GET.get("range", "24h"),
            "teams": teams,
            "chosen_team": chosen,
            "team": budget_team,
            "error": error,
            "query": request.GET.urlencode(),
        },
        status=400 if error else 200,
    )


@require_GET
@login_required
def usage_export(request):
    try:
        rows, _filters, _teams, _chosen = _rows(request)
    except ApplicationError as exc:
        return HttpResponse(exc.message, status=exc.status_code, content_type="text/plain; charset=utf-8")
    response = HttpResponse(usage.usage_csv(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="usage.csv"'
    return response


def _staff_only(request) -> None:
    if not request.user.is_staff:
        raise Http404("No such page.")


@require_GET
@login_required
def quota_list(request):
    _staff_only(request)
    teams = [(team, quota_policies.team_quota_get(team=team)) for team in Team.objects.order_by("name")[:500]]
    return render(request, "serving/quota_list.html", {"teams": teams})


@require_http_methods(["GET", "POST"])
@login_required
def quota_edit(request, team_id: str):
    _staff_only(request)
    team = Team.objects.filter(pk=team_id).first()
    if team is None:
        raise Http404(_("No such team."))
    error = None
    if request.method == "POST":
        values: dict = {}
        try:
            for name in quota_policies.TEAM_FIELDS + quota_policies.TEAM_TRAINING_FIELDS:
                raw = request.POST.get(name, "").strip()
                if name == "monthly_gpu_hours":
                    values[name] = float(raw) if raw else 0.0
                elif raw == "":
                    values[name] = None
                else:
                    values[name] = int(raw)
        except ValueError:
            error = _("Each limit is a whole number (GPU-hours may have decimals), or empty for no limit.")
        else:
            try:
                quota_policies.team_quota_set(team=team, actor=request.user, values=values)
            except ApplicationError as exc:
                error = exc.message
            else:
                messages.success(request, _("Quotas of %(team)s saved.") % {"team": team.name})
                return redirect("quotas:list")
    return render(
        request,
        "serving/quota_edit.html",
        {
            "team": team,
            "quota": quota_policies.team_quota_get(team=team),
            "error": error,
            "form": request.POST,
        },
        status=400 if error else 200,
    )
