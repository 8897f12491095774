"""The native datasets API under /api/v1/: upload (multipart), versions, reports, previews, statistics,
examples and downloads. Every route is team-scoped: another team's dataset is a 404.

Uploads are checked against TUNEFORGE_MAX_UPLOAD_BYTES twice — the declared Content-Length before
the body is read, and the streamed bytes while it is parsed — and answered 413 either way.
"""

from __future__ import annotations

from django.http import FileResponse, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from accounts.access import TeamApiView
from common.api import ErrorSerializer, list_schema, refuse_empty_patch
from common.errors import InvalidInput, NotFound
from common.openai_compat import PassThroughNegotiation
from common.pagination import list_response_body, paginate_after, parse_int, parse_limit
from datasets_app import selectors, services
from datasets_app.ingest.export import csv_lines, iter_rows
from datasets_app.ingest.options import HEADER_CHOICES, QUOTING_CHOICES
from datasets_app.models import DatasetVersion, Task
from datasets_app.uploads import check_content_length, limited_upload_handlers

ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404)}
UPLOAD_ERRORS = {
    **ERRORS,
    409: ErrorSerializer,
    413: ErrorSerializer,
    422: OpenApiResponse(
        ErrorSerializer,
        description="Blocking errors; `error.details.report` "
        "holds the validation report. Nothing was stored.",
    ),
}
PAGE_PARAMS = [
    OpenApiParameter("after", str, description="The last id of the previous page."),
    OpenApiParameter("limit", int, description="At most this many items (1–100, default 20)."),
]


# --- output shapes -----------------------------------------------------------------------------


class DatasetVersionOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    dataset_id = serializers.CharField()
    number = serializers.IntegerField()
    sha256 = serializers.CharField(
        help_text="sha256 of the normalized content (training + validation splits)."
    )
    task = serializers.ChoiceField(choices=Task.choices)
    status = serializers.ChoiceField(choices=DatasetVersion.Status.choices)
    row_count = serializers.IntegerField(help_text="Training rows.")
    validation_row_count = serializers.IntegerField()
    labels = serializers.ListField(child=serializers.CharField())
    label_counts = serializers.DictField(
        child=serializers.IntegerField(), help_text="Training rows per label."
    )
    column_mapping = serializers.DictField()
    source_filename = serializers.CharField()
    source_sha256 = serializers.CharField(
        help_text="sha256 of the uploaded file as it arrived (empty for versions uploaded before it was recorded)."
    )
    source_format = serializers.CharField()
    warning_count = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    created_by = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField(help_text="Download URLs of the normalized splits (JSONL).")

    def get_object(self, version) -> str:
        return "dataset.version"

    def get_warning_count(self, version) -> int:
        return len(version.report.get("warnings", []))

    def get_created_by(self, version) -> str | None:
        return version.created_by.email if version.created_by_id else None

    def get_files(self, version) -> dict[str, str | None]:
        url = reverse("api-dataset-version-download", args=[version.pk])
        return {
            "train": f"{url}?split=train&format=jsonl",
            "validation": f"{url}?split=validation&format=jsonl" if version.validation_row_count else None,
        }


class DatasetOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    name = serializers.CharField()
    description = serializers.CharField()
    task = serializers.ChoiceField(choices=Task.choices)
    pii_masking = serializers.BooleanField()
    version_count = serializers.SerializerMethodField()
    latest_version = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    created_by = serializers.SerializerMethodField()

    def get_object(self, dataset) -> str:
        return "dataset"

    def get_version_count(self, dataset) -> int:
        count = getattr(dataset, "version_count", None)
        return count if count is not None else dataset.versions.count()

    @extend_schema_field(DatasetVersionOutputSerializer(allow_null=True))
    def get_latest_version(self, dataset) -> dict | None:
        latest = selectors.dataset_latest_version(dataset=dataset)
        return DatasetVersionOutputSerializer(latest).data if latest else None

    def get_created_by(self, dataset) -> str | None:
        return dataset.created_by.email if dataset.created_by_id else None


class ReportSerializer(serializers.Serializer):
    errors = serializers.ListField(child=serializers.DictField())
    error_count = serializers.IntegerField()
    errors_truncated = serializers.BooleanField()
    warnings = serializers.ListField(child=serializers.DictField())
    stats = serializers.DictField()
    masked = serializers.DictField(child=serializers.IntegerField())


class UploadOutputSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="Always `dataset.upload`.")
    created = serializers.BooleanField(help_text="False when identical content already was a version.")
    dataset = DatasetOutputSerializer()
    version = DatasetVersionOutputSerializer()
    report = ReportSerializer()


def _upload_body(outcome: services.UploadOutcome) -> dict:
    return {
        "object": "dataset.upload",
        "created": outcome.created,
        "dataset": DatasetOutputSerializer(outcome.dataset).data,
        "version": DatasetVersionOutputSerializer(outcome.version).data,
        "report": outcome.report,
    }


# --- upload input -------------------------------------------------------------------------------


class UploadInputSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True,
        help_text="CSV, TSV (or any delimiter), JSONL or Alpaca-style JSON; UTF-8 or a detected/given encoding.",
    )
    validation_file = serializers.FileField(
        required=False,
        allow_empty_file=True,
        help_text="Optional validation split; else a stratified split is made.",
    )
    task = serializers.ChoiceField(choices=Task.choices, required=False, help_text="Detected when omitted.")
    validation_fraction = serializers.FloatField(
        required=False,
        default=0.1,
        min_value=0.0,
        max_value=0.9,
        help_text="Share of rows held out when no validation_file is given.",
    )
    seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=2**31 - 1)
    text_column = serializers.CharField(required=False, allow_blank=True, max_length=200)
    label_column = serializers.CharField(required=False, allow_blank=True, max_length=200)
    text_pair_column = serializers.CharField(required=False, allow_blank=True, max_length=200)
    label_names = serializers.JSONField(required=False, help_text='Rename labels, e.g. {"0": "bearish"}.')
    pii_masking = serializers.BooleanField(required=False, default=False)
    deduplicate = serializers.BooleanField(required=False, default=False)
    tokenizer_model = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Base model whose tokenizer measures text lengths.",
    )
    encoding = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=40,
        help_text="The file's text encoding (e.g. latin-1, cp1252, gbk, utf-16); detected when omitted.",
    )
    quoting = serializers.ChoiceField(
        choices=QUOTING_CHOICES,
        required=False,
        default="auto",
        help_text='CSV/TSV quoting: `csv` ("..." quotes fields), `none` (a quote is an ordinary '
        "character), `auto` (decided from the file; tab-separated files with bare quotes read as `none`).",
    )
    delimiter = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=1,
        help_text="Field delimiter, any single character (e.g. `@` for `sentence@label` lines); detected "
        "when omitted. Use `\\t` for a tab.",
    )
    header = serializers.ChoiceField(
        choices=HEADER_CHOICES,
        required=False,
        default="auto",
        help_text="Whether the first line names the columns; with `no`, give `columns`.",
    )
    columns = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="Comma-separated column names in the file's order, e.g. `text,label` (for header=no).",
    )

    def to_internal_value(self, data):
        # "\t" typed in a form is a tab; a literal tab arrives as is.
        if hasattr(data, "get") and data.get("delimiter") in ("\\t", "tab"):
            data = data.copy()
            data["delimiter"] = "\t"
        return super().to_internal_value(data)

    def options(self) -> services.UploadOptions:
        data = self.validated_data
        label_names = data.get("label_names")
        if label_names in ("", None):
            label_names = None
        return services.UploadOptions(
            task=data.get("task") or None,
            text_column=data.get("text_column") or None,
            label_column=data.get("label_column") or None,
            text_pair_column=data.get("text_pair_column") or None,
            label_names=label_names,
            pii_masking=data["pii_masking"],
            deduplicate=data["deduplicate"],
            validation_fraction=data["validation_fraction"],
            seed=data["seed"],
            tokenizer_model=data.get("tokenizer_model") or None,
            encoding=data.get("encoding") or None,
            quoting=data.get("quoting") or "auto",
            delimiter=data.get("delimiter") or None,
            header=data.get("header") or "auto",
            columns=[c.strip() for c in data["columns"].split(",")] if data.get("columns") else None,
        )


class DatasetUploadInputSerializer(UploadInputSerializer):
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Defaults to the file name. An existing name adds a version to it.",
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")


class UploadApiMixin:
    """Sets the size-limited upload handlers before anything can read the body (authentication's
    CSRF check reads POST data), and refuses an oversized declared body before reading it."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def initialize_request(self, request, *args, **kwargs):
        if request.method == "POST":
            request.upload_handlers = limited_upload_handlers(request)
        return super().initialize_request(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        if request.method == "POST":
            check_content_length(request)
        super().initial(request, *args, **kwargs)


def _uploaded(serializer: UploadInputSerializer) -> dict:
    data = serializer.validated_data
    validation = data.get("validation_file")
    return {
        "file": data["file"],
        "filename": data["file"].name,
        "validation_file": validation,
        "validation_filename": validation.name if validation else None,
    }


# --- datasets ----------------------------------------------------------------------------------


class DatasetCollectionApi(UploadApiMixin, TeamApiView):
    @extend_schema(
        operation_id="datasets_list",
        summary="List the team's datasets",
        parameters=PAGE_PARAMS,
        responses={200: list_schema(DatasetOutputSerializer, name="DatasetList"), **ERRORS},
    )
    def get(self, request):
        page = paginate_after(
            selectors.dataset_list(team=self.ctx.team),
            after=request.query_params.get("after"),
            limit=parse_limit(request.query_params.get("limit")),
        )
        datasets = selectors.with_latest_versions(page.items)
        return Response(list_response_body(page, DatasetOutputSerializer(datasets, many=True).data))

    @extend_schema(
        operation_id="datasets_upload",
        summary="Upload a file as a new dataset (or a new version of the team's dataset with that name)",
        request={"multipart/form-data": DatasetUploadInputSerializer},
        responses={
            201: UploadOutputSerializer,
            200: OpenApiResponse(
                UploadOutputSerializer, description="Identical content: the existing version."
            ),
            **UPLOAD_ERRORS,
        },
    )
    def post(self, request):
        serializer = DatasetUploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = services.dataset_create_from_upload(
            team=self.ctx.team,
            user=self.ctx.user,
            name=serializer.validated_data.get("name"),
            description=serializer.validated_data.get("description", ""),
            options=serializer.options(),
            **_uploaded(serializer),
        )
        return Response(
            _upload_body(outcome), status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
        )


class DatasetDetailApi(TeamApiView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(required=False, max_length=200)
        description = serializers.CharField(required=False, allow_blank=True)
        pii_masking = serializers.BooleanField(
            required=False, help_text="Applies to versions uploaded from now on."
        )

    @extend_schema(
        operation_id="datasets_retrieve",
        summary="A dataset",
        responses={200: DatasetOutputSerializer, **ERRORS},
    )
    def get(self, request, dataset_id: str):
        dataset = selectors.dataset_get(team=self.ctx.team, dataset_id=dataset_id)
        return Response(DatasetOutputSerializer(dataset).data)

    @extend_schema(
        operation_id="datasets_update",
        summary="Rename or re-describe a dataset",
        request=InputSerializer,
        responses={200: DatasetOutputSerializer, **ERRORS, 409: ErrorSerializer},
    )
    def patch(self, request, dataset_id: str):
        dataset = selectors.dataset_get(team=self.ctx.team, dataset_id=dataset_id)
        # partial: an omitted checkbox in form data must not read as pii_masking=false.
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        refuse_empty_patch(serializer.validated_data, fields=["name", "description", "pii_masking"])
        dataset = services.dataset_update(dataset=dataset, **serializer.validated_data)
        return Response(DatasetOutputSerializer(dataset).data)

    @extend_schema(
        operation_id="datasets_destroy",
        summary="Delete a dataset, its versions and their files",
        responses={
            204: None,
            **ERRORS,
            409: OpenApiResponse(ErrorSerializer, description="A version is used by a job."),
        },
    )
    def delete(self, request, dataset_id: str):
        dataset = selectors.dataset_get(team=self.ctx.team, dataset_id=dataset_id)
        services.dataset_delete(dataset=dataset)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DatasetVersionCollectionApi(UploadApiMixin, TeamApiView):
    @extend_schema(
        operation_id="dataset_versions_list",
        summary="A dataset's versions, newest first",
        parameters=PAGE_PARAMS,
        responses={200: list_schema(DatasetVersionOutputSerializer, name="DatasetVersionList"), **ERRORS},
    )
    def get(self, request, dataset_id: str):
        dataset = selectors.dataset_get(team=self.ctx.team, dataset_id=dataset_id)
        page = paginate_after(
            selectors.dataset_version_list(dataset=dataset),
            after=request.query_params.get("after"),
            limit=parse_limit(request.query_params.get("limit")),
        )
        return Response(list_response_body(page, DatasetVersionOutputSerializer(page.items, many=True).data))

    @extend_schema(
        operation_id="dataset_versions_upload",
        summary="Upload a new version of a dataset",
        request={"multipart/form-data": UploadInputSerializer},
        responses={
            201: UploadOutputSerializer,
            200: OpenApiResponse(
                UploadOutputSerializer, description="Identical content: the existing version."
            ),
            **UPLOAD_ERRORS,
        },
    )
    def post(self, request, dataset_id: str):
        dataset = selectors.dataset_get(team=self.ctx.team, dataset_id=dataset_id)
        serializer = UploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = services.dataset_version_create(
            team=self.ctx.team,
            user=self.ctx.user,
            dataset=dataset,
            options=serializer.options(),
            **_uploaded(serializer),
        )
        return Response(
            _upload_body(outcome), status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
        )


# --- versions ----------------------------------------------------------------------------------


class DatasetVersionDetailApi(TeamApiView):
    @extend_schema(
        operation_id="dataset_versions_retrieve",
        summary="A dataset version",
        responses={200: DatasetVersionOutputSerializer, **ERRORS},
    )
    def get(self, request, version_id: str):
        version = selectors.dataset_version_get(team=self.ctx.team, version_id=version_id)
        return Response(DatasetVersionOutputSerializer(version).data)

    @extend_schema(
        operation_id="dataset_versions_destroy",
        summary="Delete a version and its files",
        responses={
            204: None,
            **ERRORS,
            409: OpenApiResponse(ErrorSerializer, description="Used by a fine-tuning job."),
        },
    )
    def delete(self, request, version_id: str):
        version = selectors.dataset_version_get(team=self.ctx.team, version_id=version_id)
        services.dataset_version_delete(version=version)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DatasetVersionReportOutputSerializer(ReportSerializer):
    object = serializers.CharField(help_text="Always `dataset.version.report`.")
    version_id = serializers.CharField()


class DatasetVersionReportApi(TeamApiView):
    @extend_schema(
        operation_id="dataset_versions_report",
        summary="The validation report of a version",
        responses={200: DatasetVersionReportOutputSerializer, **ERRORS},
    )
    def get(self, request, version_id: str):
        version = selectors.dataset_version_get(team=self.ctx.team, version_id=version_id)
        return Response({"object": "dataset.version.report", "version_id": version.pk, **version.report})


class PreviewOutputSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="Always `list`.")
    split = serializers.CharField()
    data = serializers.ListField(
        child=serializers.DictField(), help_text="Rows with their 1-based `row` number."
    )
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    total = serializers.IntegerField()
    has_more = serializers.BooleanField()
    next_offset = serializers.IntegerField(allow_null=True)


def _int_param(request, name: str, default: int) -> int:
    return parse_int(request.query_params.get(name), name=name, default=default)


class DatasetVersionPreviewApi(TeamApiView):
    @extend_schema(
        operation_id="dataset_versions_preview",
        summary="Normalized rows of a split, by offset",
        description="Rows have no ids, so this list pages by row offset: pass `next_offset` back as "
        "`offset`.",
        parameters=[
            OpenApiParameter("split", str, enum=["train", "validation"]),
            OpenApiParameter("offset", int, description="Rows to skip (default 0)."),
            OpenApiParameter("limit", int, description="1–100, default 20."),
        ],
        responses={200: PreviewOutputSerializer, **ERRORS},
    )
    def get(self, request, version_id: str):
        version = selectors.dataset_version_get(team=self.ctx.team, version_id=version_id)
        body = selectors.version_preview(
            version=version,
            split=request.query_params.get("split") or "train",
            offset=_int_param(request, "offset", 0),
            limit=_int_param(request, "limit", 20),
        )
        return Response(body)


class StatsOutputSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="Always `dataset.version.stats`.")
    version_id = serializers.CharField()
    task = serializers.CharField()
    row_count = serializers.IntegerField()
    validation_row_count = serializers.IntegerField()
    labels = serializers.ListField(child=serializers.DictField(), help_text="[{label, train, validation}]")
    token_lengths = serializers.DictField(
        help_text="{model, max_length, sampled, p50, p95, max, bins[{start,end,count}]}"
    )


class DatasetVersionStatsApi(TeamApiView):
    @extend_schema(
        operation_id="dataset_versions_stats",
        summary="Label distribution and token-length histogram",
        parameters=[
            OpenApiParameter(
                "model",
                str,
                description="Base model whose tokenizer to use (default: the platform's default base model).",
            )
        ],
        responses={200: StatsOutputSerializer, **ERRORS},
    )
    def get(self, request, version_id: str):
        version = selectors.dataset_version_get(team=self.ctx.team, version_id=version_id)
        return Response(
            {
                "object": "dataset.version.stats",
                "version_id": version.pk,
                "task": version.task,
                "row_count": version.row_count,
                "validation_row_count": version.validation_row_count,
                "labels": selectors.version_label_distribution(version=version),
                "token_lengths": selectors.version_token_lengths(
                    version=version, model=request.query_params.get("model")
                ),
            }
        )


class ExamplesOutputSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="Always `dataset.version.examples`.")
    label = serializers.CharField(allow_null=True)
    data = serializers.DictField(
        child=serializers.ListField(child=serializers.DictField()), help_text="label → training rows"
    )


class DatasetVersionExamplesApi(TeamApiView):
    @extend_schema(
        operation_id="dataset_versions_examples",
        summary="Training examples per label",
        parameters=[
            OpenApiParameter("label", str, description="One label (default: every label)."),
            OpenApiParameter(
                "limit", int, description="Examples per label (1–100; default 3, or 10 with `label`)."
            ),
        ],
        responses={200: ExamplesOutputSerializer, **ERRORS},
    )
    def get(self, request, version_id: str):
        version = selectors.dataset_version_get(team=self.ctx.team, version_id=version_id)
        label = request.query_params.get("label")
        label = label if label not in (None, "") else None
        limit = _int_param(request, "limit", 10 if label is not None else 3)
        return Response(
            {
                "object": "dataset.version.examples",
                "label": label,
                "data": selectors.version_examples(version=version, label=label, limit=limit),
            }
        )


class DatasetVersionDownloadApi(TeamApiView):
    content_negotiation_class = PassThroughNegotiation  # `?format=csv` names the file format

    @extend_schema(
        operation_id="dataset_versions_download",
        summary="Download a split (JSONL or CSV)",
        description="CSV cells that a spreadsheet would run as formulas (starting with = + - @, tab or "
        "CR) get a leading apostrophe.",
        parameters=[
            OpenApiParameter("split", str, enum=["train", "validation"]),
            OpenApiParameter("format", str, enum=["jsonl", "csv"]),
        ],
        responses={
            (200, "application/jsonl"): OpenApiTypes.BINARY,
            (200, "text/csv"): OpenApiTypes.BINARY,
            **ERRORS,
        },
    )
    def get(self, request, version_id: str):
        version = selectors.dataset_version_get(team=self.ctx.team, version_id=version_id)
        split = request.query_params.get("split") or "train"
        fmt = request.query_params.get("format") or "jsonl"
        if fmt not in ("jsonl", "csv"):
            raise InvalidInput(f"format must be 'jsonl' or 'csv', got {fmt!r}.", field="format")
        field_file = selectors.split_file(version, split)
        if field_file is None:
            raise NotFound(f"Version {version.pk} has no {split} rows.", field="split")
        base = f"{services.safe_filename(version.dataset.name, default='dataset')}-v{version.number}-{split}"
        handle = field_file.storage.open(field_file.name, "rb")
        if fmt == "jsonl":
            return FileResponse(
                handle,
                as_attachment=True,
                filename=f"{base}.jsonl",
                content_type="application/jsonl; charset=utf-8",
            )
        has_pair = "text_pair" in (version.column_mapping or {}) and bool(
            version.column_mapping.get("text_pair")
        )

        def lines():
            try:
                yield "\ufeff"  # spreadsheets read UTF-8 CSV correctly only with a BOM
                yield from csv_lines(iter_rows(handle), version.task, has_pair=has_pair)
            finally:
                handle.close()

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{base}.csv"'
        return response
