from django.urls import path

from serving import usage_views

app_name = "usage"
urlpatterns = [
    path("", usage_views.usage_page, name="page"),
    path("export.csv", usage_views.usage_export, name="export"),
]
