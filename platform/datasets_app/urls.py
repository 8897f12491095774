from django.urls import path

from datasets_app import views

app_name = "datasets_app"
urlpatterns = [
    path("", views.dataset_list, name="list"),
    path("new/", views.dataset_new, name="new"),
    path("versions/<str:version_id>/", views.version_detail, name="version"),
    path("versions/<str:version_id>/delete/", views.version_delete, name="version_delete"),
    path("<str:dataset_id>/", views.dataset_detail, name="detail"),
    path("<str:dataset_id>/delete/", views.dataset_delete, name="delete"),
]
