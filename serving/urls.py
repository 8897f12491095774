from django.urls import path

from serving import views

app_name = "serving"
urlpatterns = [
    path("", views.endpoint_list, name="list"),
    path("new/", views.endpoint_new, name="new"),
    # Three segments: no endpoint slug can shadow them.
    path("checks/int8/<str:check_id>/", views.int8_confirm, name="int8-confirm"),
    path("checks/int8/<str:check_id>/status/", views.int8_confirm_status, name="int8-status"),
    path("<slug:slug>/", views.endpoint_detail, name="detail"),
    path("<slug:slug>/<str:action>/", views.endpoint_action, name="action"),
]
