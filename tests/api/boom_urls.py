"""The project's URLs plus a route under each API face that fails with an unhandled exception."""

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from config.urls import handler404, handler500  # noqa: F401
from config.urls import urlpatterns as project_urlpatterns


class Boom(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("forced failure")


urlpatterns = [path("api/v1/boom", Boom.as_view()), path("v1/boom", Boom.as_view()), *project_urlpatterns]
