"""OpenAPI helpers every app's API shares: the error body and the paginated list shape.

(The acting team and its roles are resolved in `accounts.access`.)
"""

from rest_framework import serializers

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
