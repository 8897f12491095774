from django.urls import path

from serving import views

app_name = "serving"
urlpatterns = [
    path("", views.endpoint_list, name="list"),
    path("new/", views.endpoint_new, name="new"),
    path("<slug:slug>/", views.endpoint_detail, name="detail"),
    path("<slug:slug>/<str:action>/", views.endpoint_action, name="action"),
]
