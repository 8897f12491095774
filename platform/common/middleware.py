"""The API speaks English whatever language the web UI is set to; every response carries the
security headers (Content-Security-Policy, Permissions-Policy)."""

from django.utils import translation

# The native API, the OpenAI-compatible face and the API schema/docs.
API_PREFIXES = ("/api/", "/v1/")
UI_HEADER = "X-Tuneforge-UI"


class ApiInEnglishMiddleware:
    """Undoes LocaleMiddleware's choice on API paths: error messages there are for developers and
    documented in English, and a browser's language cookie (the web UI's switcher) or
    Accept-Language header must not turn DRF's own messages Chinese next to our English ones.
    Goes right after LocaleMiddleware.

    The web UI's own calls to the API (the dataset upload page) send `X-Tuneforge-UI: 1`: those
    keep the page's language, so a refusal shown on a Chinese page reads in Chinese."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(API_PREFIXES) and request.headers.get(UI_HEADER) != "1":
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Content-Security-Policy and Permissions-Policy on every response (settings
    TUNEFORGE_CONTENT_SECURITY_POLICY, TUNEFORGE_PERMISSIONS_POLICY). Scripts and styles come from
    this server only, so templates carry no inline <script> or on* handler (docs/architecture.md)."""

    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        self.csp = "; ".join(
            f"{directive} {' '.join(sources)}"
            for directive, sources in settings.TUNEFORGE_CONTENT_SECURITY_POLICY.items()
        )
        self.permissions = ", ".join(
            f"{feature}=({' '.join(allow)})"
            for feature, allow in settings.TUNEFORGE_PERMISSIONS_POLICY.items()
        )

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.csp)
        response.headers.setdefault("Permissions-Policy", self.permissions)
        return response
