from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny, IsAuthenticated

from common import health, metrics, views
from common.api import JsonErrorsMixin

api_v1 = [
    path("", include("accounts.api_urls")),
    path("", include("datasets_app.api_urls")),
    path("", include("finetune.api_urls")),
    path("", include("workers.api_urls")),
    path("", include("serving.api_urls")),
]


class _DocsAccess:
    """The schema and Swagger UI answer anonymous callers only where TUNEFORGE_PUBLIC_API_DOCS is on
    (local); in production they need a session or an API key like the rest of the API."""

    def get_permissions(self):
        if settings.TUNEFORGE_PUBLIC_API_DOCS:
            return [AllowAny()]
        return [IsAuthenticated()]


class SchemaView(JsonErrorsMixin, _DocsAccess, SpectacularAPIView):
    pass


# The split view serves Swagger UI's start-up script as a file of its own: the page needs no inline
# script, which the Content-Security-Policy forbids.
class SchemaDocsView(JsonErrorsMixin, _DocsAccess, SpectacularSwaggerSplitView):
    pass


# The OpenAI-compatible face: each app mounts its own routes, as under /api/v1/.
openai_v1 = [
    path("", include("serving.openai_models")),
    path("", include("serving.openai_inference")),
    path("", include("datasets_app.openai_files")),
    path("", include("finetune.openai_jobs")),
]

# Unknown routes and unhandled errors under /api/ and /v1/ answer JSON in each face's error shape.
handler404 = "common.error_pages.page_not_found"
handler500 = "common.error_pages.server_error"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SchemaDocsView.as_view(url_name="schema"), name="api-docs"),
    path("v1/", include(openai_v1)),
    path("i18n/", include("django.conf.urls.i18n")),
    # The djangojs catalog of locale/ (packages=["common"] keeps the admin's JS strings out of it).
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["common"]), name="javascript-catalog"),
    path("accounts/", include("accounts.urls")),
    path("datasets/", include("datasets_app.urls")),
    path("jobs/", include("finetune.urls")),
    path("workers/", include("workers.urls")),
    path("staff/", include("finetune.staff_urls")),
    path("endpoints/", include("serving.urls")),
    path("usage/", include("serving.usage_urls")),
    path("staff/quotas/", include("serving.quota_urls")),
    path("", views.home, name="home"),
]
