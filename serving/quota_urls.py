from django.urls import path

from serving import usage_views

app_name = "quotas"
urlpatterns = [
    path("", usage_views.quota_list, name="list"),
    path("<str:team_id>/", usage_views.quota_edit, name="edit"),
]
