from django.urls import path

from serving import apis

urlpatterns = [
    path("endpoints", apis.EndpointListApi.as_view(), name="api-endpoints"),
    path("endpoints/<str:slug>", apis.EndpointDetailApi.as_view(), name="api-endpoint"),
    path("endpoints/<str:slug>/publish", apis.EndpointPublishApi.as_view(), name="api-endpoint-publish"),
    path("endpoints/<str:slug>/rollback", apis.EndpointRollbackApi.as_view(), name="api-endpoint-rollback"),
    path("endpoints/<str:slug>/canary", apis.EndpointCanaryApi.as_view(), name="api-endpoint-canary"),
    path("endpoints/<str:slug>/events", apis.EndpointEventListApi.as_view(), name="api-endpoint-events"),
    path("endpoints/<str:slug>/int8-check", apis.EndpointInt8Api.as_view(), name="api-endpoint-int8"),
    path("endpoints/<str:slug>/predict", apis.EndpointPredictApi.as_view(), name="api-endpoint-predict"),
    path("int8-checks", apis.Int8CheckListApi.as_view(), name="api-int8-checks"),
    path("int8-checks/<str:check_id>", apis.Int8CheckDetailApi.as_view(), name="api-int8-check"),
    path("teams/<str:team_id>/quota", apis.TeamQuotaApi.as_view(), name="api-team-quota"),
    path("usage", apis.UsageApi.as_view(), name="api-usage"),
]
