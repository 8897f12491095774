"""The OpenAI-compatible models (`/v1/models`): what a key's team may call or tune. Serving keeps
inference alone; files and fine-tuning jobs are answered by datasets_app and finetune."""

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts.access import OpenAIApiView
from common.errors import Forbidden
from common.openai_compat import OPENAI_ERRORS
from serving import selectors


class ModelsApiView(OpenAIApiView):
    """Listing models needs the `read` or the `inference` scope."""

    scopes: tuple[str, ...] = ("read", "inference")

    def check_access(self, request) -> None:
        if not any(self.ctx.api_key.has_scope(scope) for scope in self.scopes):
            wanted = " or ".join(f"'{scope}'" for scope in self.scopes)
            raise Forbidden(f"This API key lacks the {wanted} scope.", code="missing_scope")


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    created = serializers.SerializerMethodField()
    owned_by = serializers.CharField()

    class Meta:
        ref_name = "OpenAIModel"

    def get_object(self, entry) -> str:
        return "model"

    def get_created(self, entry) -> int:
        return int(entry.created.timestamp())


class ModelListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="Always `list`.")
    data = ModelSerializer(many=True)

    class Meta:
        ref_name = "OpenAIModelList"


class ModelListApi(ModelsApiView):
    @extend_schema(
        operation_id="openai_models_list",
        summary="Models this key's team can use (OpenAI shape)",
        responses={200: ModelListSerializer, **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request):
        entries = selectors.model_list_for_team(team=self.ctx.team)
        return Response({"object": "list", "data": ModelSerializer(entries, many=True).data})


class ModelDetailApi(ModelsApiView):
    @extend_schema(
        operation_id="openai_models_retrieve",
        summary="One model (OpenAI shape)",
        responses={200: ModelSerializer, **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request, model_id):
        return Response(
            ModelSerializer(selectors.model_get_for_team(team=self.ctx.team, model_id=model_id)).data
        )


urlpatterns = [
    path("models", ModelListApi.as_view(), name="openai-models"),
    # Model ids contain slashes (`org/name`) and colons (`ft:base:team:suffix:job`).
    path("models/<path:model_id>", ModelDetailApi.as_view(), name="openai-model"),
]
