"""The OpenAI-compatible face (`/v1/`): API keys only, OpenAI's shapes and error body."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import Forbidden, NotFound
from serving import selectors
from serving.authentication import ApiKeyAuthentication
from serving.models import ApiKey


class OpenAIErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField()
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)


class OpenAIErrorSerializer(serializers.Serializer):
    """`{"error": {"message", "type", "param", "code"}}`, as OpenAI's clients expect."""

    error = OpenAIErrorDetailSerializer()


OPENAI_ERRORS = {code: OpenAIErrorSerializer for code in (401, 403, 404)}


class OpenAIApiView(APIView):
    """Base of every `/v1/` view: authenticated by an API key holding one of `scopes`."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]
    scopes: tuple[str, ...] = ("read", "inference")

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        api_key: ApiKey = request.auth
        if not any(api_key.has_scope(scope) for scope in self.scopes):
            wanted = " or ".join(f"'{scope}'" for scope in self.scopes)
            raise Forbidden(f"This API key lacks the {wanted} scope.", code="missing_scope")
        self.team = api_key.team


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


class ModelListApi(OpenAIApiView):
    @extend_schema(operation_id="openai_models_list", summary="Models this key's team can use (OpenAI shape)",
                   responses={200: ModelListSerializer, **OPENAI_ERRORS}, tags=["openai"])
    def get(self, request):
        entries = selectors.model_list_for_team(team=self.team)
        return Response({"object": "list", "data": ModelSerializer(entries, many=True).data})


class ModelDetailApi(OpenAIApiView):
    @extend_schema(operation_id="openai_models_retrieve", summary="One model (OpenAI shape)",
                   responses={200: ModelSerializer, **OPENAI_ERRORS}, tags=["openai"])
    def get(self, request, model_id):
        return Response(ModelSerializer(selectors.model_get_for_team(team=self.team, model_id=model_id)).data)


class UnknownRouteApi(APIView):
    """Any other `/v1/` path: OpenAI's 404 body instead of an HTML page, so clients can read it."""

    authentication_classes: list = []
    permission_classes: list = []
    schema = None

    def _not_found(self, request, *args, **kwargs):
        raise NotFound(f"Unknown route: {request.method} {request.path}.", code="unknown_url")

    get = post = put = patch = delete = _not_found
