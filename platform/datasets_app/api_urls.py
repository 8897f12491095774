from django.urls import path

from datasets_app import apis

urlpatterns = [
    path("datasets", apis.DatasetCollectionApi.as_view(), name="api-datasets"),
    path("datasets/<str:dataset_id>", apis.DatasetDetailApi.as_view(), name="api-dataset"),
    path(
        "datasets/<str:dataset_id>/versions",
        apis.DatasetVersionCollectionApi.as_view(),
        name="api-dataset-versions",
    ),
    path(
        "dataset-versions/<str:version_id>",
        apis.DatasetVersionDetailApi.as_view(),
        name="api-dataset-version",
    ),
    path(
        "dataset-versions/<str:version_id>/report",
        apis.DatasetVersionReportApi.as_view(),
        name="api-dataset-version-report",
    ),
    path(
        "dataset-versions/<str:version_id>/preview",
        apis.DatasetVersionPreviewApi.as_view(),
        name="api-dataset-version-preview",
    ),
    path(
        "dataset-versions/<str:version_id>/stats",
        apis.DatasetVersionStatsApi.as_view(),
        name="api-dataset-version-stats",
    ),
    path(
        "dataset-versions/<str:version_id>/examples",
        apis.DatasetVersionExamplesApi.as_view(),
        name="api-dataset-version-examples",
    ),
    path(
        "dataset-versions/<str:version_id>/download",
        apis.DatasetVersionDownloadApi.as_view(),
        name="api-dataset-version-download",
    ),
]
