from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from common import health, metrics, views

api_v1 = [
    path("", include("accounts.api_urls")),
    path("", include("datasets_app.api_urls")),
    path("", include("finetune.api_urls")),
    path("", include("workers.api_urls")),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("v1/", include("serving.openai_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    # The djangojs catalog of locale/ (packages=["common"] keeps the admin's JS strings out of it).
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["common"]), name="javascript-catalog"),
    path("accounts/", include("accounts.urls")),
    path("datasets/", include("datasets_app.urls")),
    path("jobs/", include("finetune.urls")),
    path("workers/", include("workers.urls")),
    path("", views.home, name="home"),
]
