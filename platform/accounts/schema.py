"""OpenAPI description of API-key authentication (drf-spectacular finds it once imported)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "tf_<prefix>.<secret>",
            "description": "A team API key, `Authorization: Bearer tf_...` (or the `X-Api-Key` header).",
        }
