"""Web pages for serving: endpoint list, new endpoint, endpoint page (status, history, rollback,
unpublish, canary, int8 check, a try-it form, copyable snippets). Same services as the API."""

from __future__ import annotations

import json
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import can_write, membership_or_404
from common.errors import ApplicationError, NotFound
from serving import inference, selectors, services
from serving.usage_gate import usage_gate


def _endpoint_or_404(membership, slug: str):
    try:
        return selectors.endpoint_get(team=membership.team, slug=slug)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _versions(team):
    from finetune.selectors import model_version_list

    return list(model_version_list(team=team)[:200])


@login_required
def endpoint_list(request):
    membership = membership_or_404(request)
    endpoints = list(selectors.endpoint_list(team=membership.team)[:200])
    return render(
        request, "serving/endpoint_list.html", {"endpoints": endpoints, "can_write": can_write(membership)}
    )


# What the int8 confirm page carries back to the form it came from (nothing else is accepted).
_CONFIRM_FIELDS = ("then", "slug", "model_version", "serve", "quantize", "truncation", "force")


def _int8_confirm_first(request, *, team, fields: dict):
    """Choosing int8 on a publish form first shows the version's int8 accuracy change: it starts the
    measurement when there is none, and the confirm page's Confirm button posts the form again
    with `int8_check` (the service still refuses unless that check is done)."""
    check = services.int8_check_request(team=team, model_version_id=fields["model_version"], again=False)
    return redirect(reverse("serving:int8-confirm", args=[check.id]) + "?" + urlencode(fields))


@login_required
def endpoint_new(request):
    membership = membership_or_404(request)
    if not can_write(membership):
        raise Http404(_("Viewers cannot create endpoints."))
    error = None
    chosen = request.GET.get("model_version", "")
    if request.method == "POST":
        chosen = request.POST.get("model_version", "")
        options = {
            "serve": request.POST.get("serve", "adapter"),
            "quantize": request.POST.get("quantize", "none"),
            "truncation": request.POST.get("truncation", "truncate"),
        }
        try:
            if options["quantize"] == "int8" and not request.POST.get("int8_check"):
                fields = {"then": "new", "slug": request.POST.get("slug", ""), "model_version": chosen}
                return _int8_confirm_first(request, team=membership.team, fields={**fields, **options})
            endpoint = services.endpoint_create(
                team=membership.team,
                user=request.user,
                slug=request.POST.get("slug", ""),
                model_version_id=chosen,
                options=options,
            )
        except ApplicationError as exc:
            error = exc.message
        else:
            messages.success(request, _("Endpoint created; the model is being deployed."))
            return redirect("serving:detail", slug=endpoint.slug)
    return render(
        request,
        "serving/endpoint_new.html",
        {"versions": _versions(membership.team), "chosen": chosen, "error": error, "form": request.POST},
    )


def call_snippets(*, base_url: str, slug: str, is_classifier: bool) -> tuple[str, str]:
    """A curl command (the native predict) and a Python program (the official `openai` client on
    the `/v1/` face), each runnable as copied once `TUNEFORGE_API_KEY` holds a key with the
    `inference` scope: the shell expands the variable inside double quotes, Python reads it from
    the environment."""
    if is_classifier:
        payload = {"input": ["Hello"]}
        call = (
            'result = client.post("/classifications", cast_to=object,\n'
            f'                     body={{"model": "{slug}", "input": ["Hello"]}})\n'
            'print(result["data"][0]["label"])'
        )
    else:
        payload = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 64}
        call = (
            f'completion = client.chat.completions.create(model="{slug}",\n'
            '    messages=[{"role": "user", "content": "Hello"}], max_tokens=64)\n'
            "print(completion.choices[0].message.content)"
        )
    curl = (
        f"curl {base_url}/api/v1/endpoints/{slug}/predict \\\n"
        '  -H "Authorization: Bearer $TUNEFORGE_API_KEY" \\\n'
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d '{json.dumps(payload)}'"
    )
    program = (
        "import os\n\nfrom openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{base_url}/v1", api_key=os.environ["TUNEFORGE_API_KEY"])\n' + call
    )
    return curl, program


@login_required
def endpoint_detail(request, slug: str):
    membership = membership_or_404(request)
    endpoint = _endpoint_or_404(membership, slug)
    result = error = None
    text = ""
    if request.method == "POST":  # the try-it form
        text = request.POST.get("text", "")
        try:
            target = inference.resolve_target(team=membership.team, model=endpoint.slug)
            if target.is_classifier:
                # The try-it form is an inference call like any other: the team's quotas count it.
                with usage_gate(team=membership.team, endpoint=target.endpoint, reserve_tokens=1) as call:
                    classified = inference.classify(target=target, inputs=[text], request_id=uuid.uuid4().hex)
                    call.used(input_tokens=classified.usage["input_tokens"], version=classified.model_version)
                result = classified.data
            else:
                with usage_gate(team=membership.team, endpoint=target.endpoint, reserve_tokens=64) as call:
                    gen, version = inference.generate(
                        target=target,
                        messages=[{"role": "user", "content": text}],
                        max_tokens=64,
                        temperature=1.0,
                        top_p=1.0,
                        stop=None,
                        n=1,
                        seed=None,
                        request_id=uuid.uuid4().hex,
                    )
                    call.used(
                        input_tokens=gen.prompt_tokens, output_tokens=gen.completion_tokens, version=version
                    )
                result = [{"index": c.index, "label": c.text, "score": None} for c in gen.choices]
        except ApplicationError as exc:
            error = exc.message
    try:
        int8 = selectors.int8_check_get(endpoint=endpoint)
    except NotFound:
        int8 = None
    serving_version = endpoint.model_version or endpoint.pending_version
    curl, openai_snippet = call_snippets(
        base_url=request.build_absolute_uri("/").rstrip("/"),
        slug=endpoint.slug,
        is_classifier=serving_version is None or serving_version.task in inference.CLASSIFIER_TASKS,
    )
    return render(
        request,
        "serving/endpoint_detail.html",
        {
            "endpoint": endpoint,
            "events": list(selectors.endpoint_event_list(endpoint=endpoint)[:50]),
            "versions": _versions(membership.team),
            "int8": int8,
            "can_write": can_write(membership),
            "curl": curl,
            "openai_snippet": openai_snippet,
            "result": result,
            "error": error,
            "text": text,
        },
    )


@login_required
@require_POST
def endpoint_action(request, slug: str, action: str):
    membership = membership_or_404(request)
    endpoint = _endpoint_or_404(membership, slug)
    if not can_write(membership):
        raise Http404(_("Viewers cannot change endpoints."))
    if action in ("rollback", "unpublish") and request.POST.get("confirm") != "yes":
        messages.error(request, _("Tick the confirmation box first."))
        return redirect("serving:detail", slug=slug)
    try:
        if action == "rollback":
            services.endpoint_rollback(endpoint=endpoint, user=request.user)
        elif action == "unpublish":
            services.endpoint_unpublish(endpoint=endpoint, user=request.user)
            messages.success(request, _("Endpoint unpublished."))
            return redirect("serving:list")
        elif action == "publish":
            quantize = request.POST.get("quantize") or endpoint.options.get("quantize", "none")
            if quantize == "int8" and not request.POST.get("int8_check"):
                fields = {
                    "then": "publish",
                    "slug": endpoint.slug,
                    "model_version": request.POST.get("model_version", ""),
                    "quantize": quantize,
                    "force": request.POST.get("force", ""),
                }
                return _int8_confirm_first(request, team=membership.team, fields=fields)
            services.endpoint_publish(
                endpoint=endpoint,
                user=request.user,
                model_version_id=request.POST.get("model_version", ""),
                force=request.POST.get("force") == "yes",
                options={"quantize": quantize},
            )
        elif action == "canary":
            percent = request.POST.get("percent", "0")
            if percent in ("", "0"):
                services.endpoint_clear_canary(endpoint=endpoint, user=request.user)
            else:
                services.endpoint_set_canary(
                    endpoint=endpoint,
                    user=request.user,
                    model_version_id=request.POST.get("model_version", ""),
                    percent=int(percent) if percent.isdigit() else -1,
                )
        elif action == "int8":
            services.int8_check_request(
                team=membership.team,
                endpoint=endpoint,
                model_version_id=request.POST.get("model_version") or None,
            )
        else:
            raise Http404(_("No such action."))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("serving:detail", slug=slug)


def _int8_context(request, check_id: str) -> dict:
    membership = membership_or_404(request)
    try:
        check = selectors.int8_check_by_id(team=membership.team, check_id=check_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    fields = {k: request.GET[k] for k in _CONFIRM_FIELDS if request.GET.get(k)}
    then = fields.pop("then", "")
    if then == "publish" and fields.get("slug"):
        target = reverse("serving:action", args=[fields["slug"], "publish"])
    elif then == "new":
        target = reverse("serving:new")
    else:
        target = None
    return {
        "check": check,
        "fields": fields,
        "target": target if can_write(membership) else None,
        "query": urlencode({"then": then, **fields}),
    }


@login_required
def int8_confirm(request, check_id: str):
    """The int8 accuracy change of a version, measuring… then fp32 vs int8, and a Confirm button
    that publishes (the page polls its status partial while the worker measures)."""
    return render(request, "serving/int8_confirm.html", _int8_context(request, check_id))


@login_required
def int8_confirm_status(request, check_id: str):
    return render(request, "serving/_int8_check.html", _int8_context(request, check_id))
