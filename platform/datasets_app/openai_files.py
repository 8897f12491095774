"""The OpenAI-compatible files (`/v1/files…`): a "file" is a dataset version (`dsv-...`).

A thin translation over the datasets services and selectors: every check is theirs; only the shape
and the error names are OpenAI's.
"""

from collections.abc import Iterator

from django.http import StreamingHttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from accounts.access import OpenAIApiView
from common.api import list_schema
from common.errors import InvalidInput, NotFound, Unprocessable
from common.openai_compat import (
    OPENAI_ERRORS,
    PAGE_PARAMS,
    WRITE_ERRORS,
    PassThroughNegotiation,
    openai_page,
    unix_time,
)
from common.pagination import list_response_body
from datasets_app import selectors as dataset_selectors
from datasets_app import services as dataset_services
from datasets_app.apis import UploadApiMixin
from datasets_app.models import DatasetVersion

FILE_PURPOSE = "fine-tune"
_FILE_STATUS = {
    DatasetVersion.Status.READY: "processed",
    DatasetVersion.Status.PROCESSING: "uploaded",
    DatasetVersion.Status.INVALID: "error",
}


def file_bytes(version: DatasetVersion) -> int:
    """The size of what `GET /v1/files/{id}/content` returns: the normalized splits together."""
    return sum(f.size for f in (version.normalized_file, version.validation_file) if f and f.name)


class FileSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    bytes = serializers.SerializerMethodField()
    created_at = serializers.SerializerMethodField()
    filename = serializers.CharField(source="source_filename")
    purpose = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()

    class Meta:
        ref_name = "OpenAIFile"

    def get_object(self, version) -> str:
        return "file"

    def get_bytes(self, version) -> int:
        return file_bytes(version)

    def get_created_at(self, version) -> int:
        return unix_time(version.created_at)

    def get_purpose(self, version) -> str:
        return FILE_PURPOSE

    def get_status(self, version) -> str:
        return _FILE_STATUS.get(version.status, "error")


class FileDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text="Always `file`.")
    deleted = serializers.BooleanField()

    class Meta:
        ref_name = "OpenAIFileDeleted"


class FileUploadInputSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True,
        help_text="JSONL: chat `{messages}` or classification `{text, label}` rows (CSV/TSV work too).",
    )
    purpose = serializers.CharField(help_text="Only `fine-tune`.")

    class Meta:
        ref_name = "OpenAIFileUpload"

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {
                    unknown[0]: "Unrecognized request argument supplied: "
                    f"{unknown[0]}; this API takes file and purpose."
                }
            )
        if attrs["purpose"] != FILE_PURPOSE:
            raise serializers.ValidationError(
                {
                    "purpose": f"purpose must be 'fine-tune', got {attrs['purpose']!r}: "
                    "Tuneforge stores files for fine-tuning only."
                }
            )
        return attrs


class FileListApi(UploadApiMixin, OpenAIApiView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="openai_files_list",
        summary="The team's files (dataset versions), newest first",
        parameters=[
            *PAGE_PARAMS,
            OpenApiParameter("order", str, enum=["asc", "desc"]),
            OpenApiParameter("purpose", str),
        ],
        responses={200: list_schema(FileSerializer, name="OpenAIFileList"), **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request):
        order = request.query_params.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise InvalidInput(f"order must be 'asc' or 'desc', got {order!r}.", field="order")
        versions = dataset_selectors.team_version_list(team=self.ctx.team)
        if request.query_params.get("purpose") not in (None, "", FILE_PURPOSE):
            versions = versions.none()  # every file here is a fine-tuning file
        page = openai_page(request, versions, order="created_at" if order == "asc" else "-created_at")
        return Response(list_response_body(page, FileSerializer(page.items, many=True).data))

    @extend_schema(
        operation_id="openai_files_create",
        summary="Upload a fine-tuning file (a new dataset version)",
        request={"multipart/form-data": FileUploadInputSerializer},
        responses={200: FileSerializer, **WRITE_ERRORS},
        tags=["openai"],
    )
    def post(self, request):
        serializer = FileUploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        try:
            outcome = dataset_services.dataset_create_from_upload(
                team=self.ctx.team,
                user=None,
                file=upload,
                filename=upload.name,
                options=dataset_services.UploadOptions(),
            )
        except Unprocessable as exc:
            if exc.code != "invalid_dataset":
                raise
            # OpenAI's clients expect a bad file to be a 400; the message names the file and line.
            raise InvalidInput(exc.message, code="invalid_file", field="file") from None
        return Response(FileSerializer(outcome.version).data)


class FileDetailApi(OpenAIApiView):
    @extend_schema(
        operation_id="openai_files_retrieve",
        summary="One file",
        responses={200: FileSerializer, **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request, file_id):
        return Response(FileSerializer(_file(self.ctx.team, file_id)).data)

    @extend_schema(
        operation_id="openai_files_delete",
        summary="Delete a file (409 while a job uses it)",
        responses={200: FileDeletedSerializer, **WRITE_ERRORS},
        tags=["openai"],
    )
    def delete(self, request, file_id):
        version = _file(self.ctx.team, file_id)
        dataset_services.dataset_version_delete(version=version)
        return Response({"id": version.id, "object": "file", "deleted": True})


def _file(team, file_id: str):
    try:
        return dataset_selectors.dataset_version_get(team=team, version_id=file_id)
    except NotFound:
        raise NotFound(f"No such File object: {file_id}.", code="file_not_found", field="id") from None


def _file_content(version) -> Iterator[bytes]:
    for split in dataset_selectors.SPLITS:
        with dataset_selectors.open_split(version=version, split=split) as fh:
            if fh is not None:
                while chunk := fh.read(64 * 1024):
                    yield chunk


class FileContentApi(OpenAIApiView):
    content_negotiation_class = PassThroughNegotiation  # the client asks for `Accept: application/binary`

    @extend_schema(
        operation_id="openai_files_content",
        summary="The file's normalized JSONL (training rows, then validation rows)",
        responses={(200, "application/jsonl"): OpenApiTypes.BINARY, **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request, file_id):
        version = _file(self.ctx.team, file_id)
        response = StreamingHttpResponse(_file_content(version), content_type="application/jsonl")
        response["Content-Length"] = str(file_bytes(version))
        return response


urlpatterns = [
    path("files", FileListApi.as_view(), name="openai-files"),
    path("files/<str:file_id>", FileDetailApi.as_view(), name="openai-file"),
    path("files/<str:file_id>/content", FileContentApi.as_view(), name="openai-file-content"),
]
