from django.urls import path

from workers import views

app_name = "workers"
urlpatterns = [
    path("", views.worker_list, name="list"),
    path("table/", views.worker_table, name="table"),
    # Worker names contain "@" and "."; `str` accepts both (anything but "/").
    path("<str:name>/<slug:action>/", views.worker_action, name="action"),
]
