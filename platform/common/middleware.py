"""The API speaks English whatever language the web UI is set to."""

from django.utils import translation

# The native API, the OpenAI-compatible face and the API schema/docs.
API_PREFIXES = ("/api/", "/v1/")


class ApiInEnglishMiddleware:
    """Undoes LocaleMiddleware's choice on API paths: error messages there are for developers and
    documented in English, and a browser's language cookie (the web UI's switcher) or
    Accept-Language header must not turn DRF's own messages Chinese next to our English ones.
    Goes right after LocaleMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(API_PREFIXES):
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
        return self.get_response(request)
