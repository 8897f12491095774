from django.urls import path, re_path

from serving import openai_views

urlpatterns = [
    path("models", openai_views.ModelListApi.as_view(), name="openai-models"),
    # Model ids contain slashes (`org/name`) and colons (`ft:base:team:suffix:job`).
    path("models/<path:model_id>", openai_views.ModelDetailApi.as_view(), name="openai-model"),
    # Keep last: any other /v1/ path answers in OpenAI's error shape.
    re_path(r"^.*$", openai_views.UnknownRouteApi.as_view(), name="openai-unknown"),
]
