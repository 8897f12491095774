"""Reads for the serving side, scoped to the calling team."""

from dataclasses import dataclass
from datetime import datetime

from accounts.models import Team
from common.errors import NotFound
from finetune.models import BaseModel


@dataclass(frozen=True)
class ModelEntry:
    """A model a team may call or tune, as `/v1/models` lists it."""

    id: str
    created: datetime
    owned_by: str


def model_list_for_team(*, team: Team) -> list[ModelEntry]:
    """The enabled base models, the team's endpoints (by slug, what `/v1/chat/completions` and
    `/v1/classifications` take as `model`), then its fine-tuned model versions (newest first, named
    `ft:{base}:{team}:{suffix}:{job id}`); another team's are never listed."""
    from finetune.selectors import model_version_list
    from serving.models import Endpoint

    base = [
        ModelEntry(id=model.name, created=model.created_at, owned_by="tuneforge")
        for model in BaseModel.objects.filter(enabled=True)  # the default model first
    ]
    endpoints = [
        ModelEntry(id=endpoint.slug, created=endpoint.created_at, owned_by=team.id)
        for endpoint in Endpoint.objects.filter(team=team).order_by("slug")
    ]
    tuned = [
        ModelEntry(id=version.name, created=version.created_at, owned_by=team.id)
        for version in model_version_list(team=team)
    ]
    return base + endpoints + tuned


def model_get_for_team(*, team: Team, model_id: str) -> ModelEntry:
    for entry in model_list_for_team(team=team):
        if entry.id == model_id:
            return entry
    raise NotFound(
        f"The model '{model_id}' does not exist or you do not have access to it.",
        code="model_not_found",
        field="model",
    )


def endpoint_list(*, team: Team):
    from serving.models import Endpoint

    return Endpoint.objects.select_related(
        "model_version", "pending_version", "previous_version", "canary_version"
    ).filter(team=team)


def endpoint_get(*, team: Team, slug: str):
    """The team's endpoint; another team's (or none) is a 404 naming the slug."""
    endpoint = endpoint_list(team=team).filter(slug=slug).first()
    if endpoint is None:
        raise NotFound(f"No endpoint {slug!r} in team {team.name}.", code="endpoint_not_found", field="slug")
    return endpoint


def endpoint_event_list(*, endpoint):
    return endpoint.events.select_related("actor", "from_version", "to_version")


def int8_check_get(*, endpoint, model_version_id: str | None = None):
    """The newest int8 check asked from the endpoint or of its live / deploying version."""
    from django.db.models import Q

    from serving.models import Int8Check

    checks = Int8Check.objects.select_related("model_version").filter(team=endpoint.team)
    if model_version_id:
        checks = checks.filter(model_version_id=model_version_id)
    else:
        versions = [v for v in (endpoint.pending_version_id, endpoint.model_version_id) if v]
        checks = checks.filter(Q(endpoint=endpoint) | Q(model_version_id__in=versions))
    check = checks.order_by("-updated_at").first()
    if check is None:
        raise NotFound(f"No int8 check for endpoint {endpoint.slug!r} yet.", code="int8_check_not_found")
    return check


def int8_check_by_id(*, team: Team, check_id: str):
    """The team's int8 check; another team's (or none) is a 404."""
    from serving.models import Int8Check

    check = Int8Check.objects.select_related("model_version").filter(team=team, pk=check_id).first()
    if check is None:
        raise NotFound(f"No int8 check {check_id!r} in this team.", code="int8_check_not_found")
    return check
