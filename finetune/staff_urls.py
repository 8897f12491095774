from django.urls import path

from finetune import staff_views

app_name = "staff"
urlpatterns = [
    path("base-models/", staff_views.base_model_list, name="base_models"),
    path("base-models/<str:name>/<slug:action>/", staff_views.base_model_action, name="base_model_action"),
    path("jobs/", staff_views.job_list_all, name="jobs"),
]
