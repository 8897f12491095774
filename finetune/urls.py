from django.urls import path

from finetune import views

app_name = "finetune"
urlpatterns = [
    path("", views.job_list, name="list"),
    path("new/", views.job_new, name="new"),
    path("compare/", views.job_compare, name="compare"),
    path("models/<str:version_id>/", views.model_detail, name="model"),
    path("<str:job_id>/", views.job_detail, name="detail"),
    path("<str:job_id>/live/", views.job_live, name="live"),
    path("<str:job_id>/<str:action>/", views.job_action, name="action"),
]
