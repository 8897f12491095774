from django.urls import path

from finetune import apis

urlpatterns = [
    path("jobs", apis.JobListApi.as_view(), name="api-jobs"),
    path("jobs/estimate", apis.JobEstimateApi.as_view(), name="api-job-estimate"),
    path("jobs/compare", apis.JobCompareApi.as_view(), name="api-job-compare"),
    path("jobs/<str:job_id>", apis.JobDetailApi.as_view(), name="api-job"),
    path("jobs/<str:job_id>/cancel", apis.JobCancelApi.as_view(), name="api-job-cancel"),
    path("jobs/<str:job_id>/pause", apis.JobPauseApi.as_view(), name="api-job-pause"),
    path("jobs/<str:job_id>/resume", apis.JobResumeApi.as_view(), name="api-job-resume"),
    path("jobs/<str:job_id>/events", apis.JobEventListApi.as_view(), name="api-job-events"),
    path("jobs/<str:job_id>/metrics", apis.JobMetricListApi.as_view(), name="api-job-metrics"),
    path("jobs/<str:job_id>/checkpoints", apis.JobCheckpointListApi.as_view(), name="api-job-checkpoints"),
    path("jobs/<str:job_id>/logs", apis.JobLogsApi.as_view(), name="api-job-logs"),
    path("base-models", apis.BaseModelListApi.as_view(), name="api-base-models"),
    path("models", apis.ModelVersionListApi.as_view(), name="api-models"),
    path("models/<str:version_id>", apis.ModelVersionDetailApi.as_view(), name="api-model"),
    path(
        "models/<str:version_id>/files/<path:path>", apis.ModelVersionFileApi.as_view(), name="api-model-file"
    ),
]
