"""The workers admin API: platform-wide, staff only.

Admin surfaces are invisible to everyone else: a signed-in non-staff user, or an API key (which acts
for a team, never for the platform), gets the same 404 as for a route that does not exist.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import ErrorSerializer
from common.errors import NotFound
from workers import selectors, services
from workers.models import WorkerNode

ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404)}


class StaffApiView(APIView):
    """Base of platform-admin API views: staff users only; everyone else sees a 404."""

    permission_classes = [IsAuthenticated]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not getattr(request.user, "is_staff", False):
            raise NotFound("Not found.", code="not_found")


class WorkerOutputSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    name = serializers.CharField(help_text="The Celery hostname, e.g. gpu0@host.")
    status = serializers.ChoiceField(choices=[(s, s) for s in selectors.STATUSES])
    admin_state = serializers.ChoiceField(choices=WorkerNode.AdminState.choices)
    admin_state_changed_at = serializers.DateTimeField(allow_null=True)
    admin_state_changed_by = serializers.SerializerMethodField()
    host = serializers.CharField()
    pid = serializers.IntegerField(allow_null=True)
    queues = serializers.ListField(child=serializers.CharField())
    device_kind = serializers.ChoiceField(choices=WorkerNode.DeviceKind.choices)
    device_name = serializers.CharField()
    device_class = serializers.CharField()
    device_memory_mb = serializers.IntegerField(allow_null=True)
    cuda_version = serializers.CharField()
    torch_version = serializers.CharField()
    os_platform = serializers.CharField()
    current_job_id = serializers.CharField(allow_null=True)
    utilisation = serializers.DictField(
        help_text="gpu_percent, memory_used_mb, memory_total_mb (NVML) or cpu_percent, rss_mb, memory_total_mb."
    )
    last_heartbeat_at = serializers.DateTimeField(allow_null=True)
    seconds_since_heartbeat = serializers.FloatField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    offline_since = serializers.DateTimeField(allow_null=True)
    last_ping = serializers.CharField()
    last_ping_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_object(self, worker) -> str:
        return "worker"

    def get_admin_state_changed_by(self, worker) -> str | None:
        user = worker.admin_state_changed_by
        return user.email if user is not None else None


class WorkerListOutputSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = WorkerOutputSerializer(many=True)
    has_more = serializers.BooleanField()


@extend_schema(tags=["workers"])
class WorkerListApi(StaffApiView):
    @extend_schema(
        summary="List workers (staff)",
        operation_id="workers_list",
        parameters=[
            OpenApiParameter("status", str, enum=list(selectors.STATUSES), description="Only this status.")
        ],
        responses={200: WorkerListOutputSerializer, 400: ErrorSerializer, **ERRORS},
    )
    def get(self, request):
        workers = selectors.worker_list(status=request.query_params.get("status") or None)
        # A platform has tens of workers, not thousands: the whole registry is one page.
        return Response(
            {"object": "list", "data": WorkerOutputSerializer(workers, many=True).data, "has_more": False}
        )


@extend_schema(tags=["workers"])
class WorkerDetailApi(StaffApiView):
    @extend_schema(
        summary="Get a worker (staff)",
        operation_id="workers_retrieve",
        responses={200: WorkerOutputSerializer, **ERRORS},
    )
    def get(self, request, name: str):
        return Response(WorkerOutputSerializer(selectors.worker_get(name=name)).data)


def _act(service, request, name: str) -> Response:
    return Response(WorkerOutputSerializer(service(name=name, actor=request.user)).data)


@extend_schema(tags=["workers"])
class WorkerDrainApi(StaffApiView):
    @extend_schema(
        operation_id="workers_drain",
        summary="Drain a worker (staff): finish the current job, take no new one",
        request=None,
        responses={200: WorkerOutputSerializer, **ERRORS},
    )
    def post(self, request, name: str):
        return _act(services.worker_drain, request, name)


@extend_schema(tags=["workers"])
class WorkerPauseApi(StaffApiView):
    @extend_schema(
        operation_id="workers_pause",
        summary="Pause a worker (staff): take no new job, pause and requeue the current one",
        request=None,
        responses={200: WorkerOutputSerializer, **ERRORS},
    )
    def post(self, request, name: str):
        return _act(services.worker_pause, request, name)


@extend_schema(tags=["workers"])
class WorkerResumeApi(StaffApiView):
    @extend_schema(
        operation_id="workers_resume",
        summary="Resume a worker (staff): accept jobs again",
        request=None,
        responses={200: WorkerOutputSerializer, **ERRORS},
    )
    def post(self, request, name: str):
        return _act(services.worker_resume, request, name)
