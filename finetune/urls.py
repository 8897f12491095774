from django.urls import path

from finetune import model_views, views

app_name = "finetune"
urlpatterns = [
    path("", views.job_list, name="list"),
    path("new/", views.job_new, name="new"),
    path("rows/", views.job_list_rows, name="list_rows"),
    path("compare/", views.job_compare, name="compare"),
    path("models/", model_views.model_list, name="models"),
    path("models/<str:version_id>/", model_views.model_detail, name="model"),
    path("models/<str:version_id>/download/", model_views.model_download, name="model_download"),
    path("<str:job_id>/", views.job_detail, name="detail"),
    path("<str:job_id>/live/", views.job_live, name="live"),
    path("<str:job_id>/<str:action>/", views.job_action, name="action"),
]
