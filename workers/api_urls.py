# Worker names are Celery hostnames ("gpu0@host.example"): `str` matches any run of characters but
# "/", so "@" and "." need no escaping.
from django.urls import path

from workers import apis

urlpatterns = [
    path("workers", apis.WorkerListApi.as_view(), name="api-workers"),
    path("workers/<str:name>", apis.WorkerDetailApi.as_view(), name="api-worker"),
    path("workers/<str:name>/drain", apis.WorkerDrainApi.as_view(), name="api-worker-drain"),
    path("workers/<str:name>/pause", apis.WorkerPauseApi.as_view(), name="api-worker-pause"),
    path("workers/<str:name>/resume", apis.WorkerResumeApi.as_view(), name="api-worker-resume"),
]
