"""OpenAPI helpers every app's API shares: the error body and the paginated list shape.

(The acting team and its roles are resolved in `accounts.access`.)
"""

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from common.errors import InvalidInput
from common.pagination import DEFAULT_LIMIT, MAX_LIMIT

# --- OpenAPI helpers: the shapes every list and error response shares -------------------------


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True)
    details = serializers.DictField(required=False)


class ErrorSerializer(serializers.Serializer):
    """The native API's error body: `{"error": {"code", "message", "field", "details"}}`."""

    error = ErrorDetailSerializer()


_list_schemas: dict[str, type[serializers.Serializer]] = {}


def list_schema(item: type[serializers.Serializer], *, name: str) -> type[serializers.Serializer]:
    """The schema of a paginated list of `item`s (`{"object":"list","data","has_more",...}`)."""
    if name not in _list_schemas:
        _list_schemas[name] = type(
            name,
            (serializers.Serializer,),
            {
                "object": serializers.CharField(help_text="Always `list`."),
                "data": item(many=True),
                "has_more": serializers.BooleanField(),
                "first_id": serializers.CharField(required=False),
                "last_id": serializers.CharField(required=False),
            },
        )
    return _list_schemas[name]


def refuse_empty_patch(validated: dict, *, fields: list[str]) -> None:
    """A PATCH that would change nothing is a 400 saying what it may change, not a silent 200."""
    if not validated:
        raise InvalidInput(
            f"Nothing to change: send at least one of {', '.join(fields)}.",
            code="nothing_to_change",
            field=fields[0] if len(fields) == 1 else None,
        )


def document_pagination_bounds(result, generator, request, public):
    """drf-spectacular postprocessing hook: every `limit` query parameter states its real bounds."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter.get("in") == "query" and parameter.get("name") == "limit":
                    parameter.setdefault("schema", {}).update(
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}
                    )
    return result


def document_unsupported_media_type(result, generator, request, public):
    """drf-spectacular postprocessing hook: an operation that takes a body answers 415 to a body
    none of its parsers reads (e.g. one sent without a Content-Type), in the shape of its 400."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            responses = operation.setdefault("responses", {})
            if "400" in responses and "415" not in responses:
                responses["415"] = {**responses["400"], "description": "Unsupported media type"}
    return result


class JsonErrorsMixin:
    """For API views that render HTML or YAML on success (the schema, its docs): their errors are
    JSON like every other error under /api/."""

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


# Swagger groups operations by tag; drf-spectacular's default tag is the first path segment after
# the common prefix, which put every path under one tag. The tag is the app that owns the view
# instead, and the OpenAI-compatible face is a group of its own.
APP_TAGS = {
    "accounts": "accounts",
    "datasets_app": "datasets",
    "finetune": "fine-tuning",
    "serving": "serving",
    "workers": "workers",
    "common": "platform",
}
OPENAI_TAG = "openai"


class AppTaggedAutoSchema(AutoSchema):
    def get_tags(self) -> list[str]:
        if self.path.startswith("/v1/"):
            return [OPENAI_TAG]
        app = type(self.view).__module__.split(".", 1)[0]
        return [APP_TAGS.get(app, app)]
