from django.urls import path, re_path

from serving import openai_views

urlpatterns = [
    path("models", openai_views.ModelListApi.as_view(), name="openai-models"),
    # Model ids contain slashes (`org/name`) and colons (`ft:base:team:suffix:job`).
    path("models/<path:model_id>", openai_views.ModelDetailApi.as_view(), name="openai-model"),
    path("files", openai_views.FileListApi.as_view(), name="openai-files"),
    path("files/<str:file_id>", openai_views.FileDetailApi.as_view(), name="openai-file"),
    path("files/<str:file_id>/content", openai_views.FileContentApi.as_view(), name="openai-file-content"),
    path("fine_tuning/jobs", openai_views.JobListApi.as_view(), name="openai-jobs"),
    path("fine_tuning/jobs/<str:job_id>", openai_views.JobDetailApi.as_view(), name="openai-job"),
    path(
        "fine_tuning/jobs/<str:job_id>/cancel", openai_views.JobCancelApi.as_view(), name="openai-job-cancel"
    ),
    path("fine_tuning/jobs/<str:job_id>/pause", openai_views.JobPauseApi.as_view(), name="openai-job-pause"),
    path(
        "fine_tuning/jobs/<str:job_id>/resume", openai_views.JobResumeApi.as_view(), name="openai-job-resume"
    ),
    path(
        "fine_tuning/jobs/<str:job_id>/events",
        openai_views.JobEventListApi.as_view(),
        name="openai-job-events",
    ),
    path(
        "fine_tuning/jobs/<str:job_id>/checkpoints",
        openai_views.JobCheckpointListApi.as_view(),
        name="openai-job-checkpoints",
    ),
    # Keep last: any other /v1/ path answers in OpenAI's error shape.
    re_path(r"^.*$", openai_views.UnknownRouteApi.as_view(), name="openai-unknown"),
]
