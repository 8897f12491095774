"""The native API for accounts: who am I, teams, members, invitations and API keys.

Team routes take the team from the URL (`/teams/{team_id}/...`); a team the caller does not belong
to is a 404. Managing the team itself (members, invitations, renaming, switching) needs a signed-in
person: an API key acts for its team's automation, so it may read these but not change them.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import apikeys, selectors, services
from accounts.access import TeamApiView, TeamContext
from accounts.emails import invitation_deliver
from accounts.models import ApiKey, ApiKeyScope, Invitation, Role, Team
from common.api import ErrorSerializer, list_schema, refuse_empty_patch
from common.errors import Forbidden, InvalidInput
from common.pagination import list_response_body, paginate_after, parse_limit

ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404, 409)}
PAGE_PARAMS = [
    OpenApiParameter("after", str, description="The last id of the previous page."),
    OpenApiParameter("limit", int, description="At most this many items (1–100, default 20)."),
]


def _require_person(ctx_or_request, *, action: str) -> None:
    api_key = (
        ctx_or_request.api_key if isinstance(ctx_or_request, TeamContext) else _api_key_of(ctx_or_request)
    )
    if api_key is not None:
        raise Forbidden(f"API keys cannot {action}; sign in as a person to do it.", code="person_required")


def _api_key_of(request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def _page(request, queryset, *, order: str, after: str | None = None):
    return paginate_after(
        queryset,
        after=after if after is not None else request.query_params.get("after"),
        limit=parse_limit(request.query_params.get("limit")),
        order=order,
    )


# --- shared output shapes ----------------------------------------------------------------------


class TeamOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    name = serializers.CharField()
    slug = serializers.CharField()
    role = serializers.SerializerMethodField(
        help_text="The caller's role in this team (null for an API key)."
    )
    max_concurrent_jobs = serializers.IntegerField()
    monthly_gpu_hours = serializers.DecimalField(max_digits=10, decimal_places=2, coerce_to_string=False)
    created_at = serializers.DateTimeField()

    def get_object(self, team) -> str:
        return "team"

    def get_role(self, team) -> str | None:
        return self.context.get("roles", {}).get(team.pk)


class MemberOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The user's id.")
    object = serializers.SerializerMethodField()
    email = serializers.EmailField()
    full_name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)
    joined_at = serializers.DateTimeField()

    def get_object(self, user) -> str:
        return "team.member"


class InvitationOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    team_id = serializers.CharField()
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices)
    status = serializers.SerializerMethodField(help_text="pending, accepted, declined, revoked or expired.")
    invited_by = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    responded_at = serializers.DateTimeField(allow_null=True)

    def get_object(self, invitation) -> str:
        return "team.invitation"

    def get_status(self, invitation: Invitation) -> str:
        if invitation.status == Invitation.Status.PENDING and invitation.is_expired:
            return "expired"
        return invitation.status

    def get_invited_by(self, invitation: Invitation) -> str | None:
        return invitation.invited_by.email if invitation.invited_by else None


class KeyLimitsSerializer(serializers.Serializer):
    requests_per_minute = serializers.IntegerField(
        min_value=0, allow_null=True, required=False, help_text="null: the team's per-key limit."
    )
    tokens_per_minute = serializers.IntegerField(
        min_value=0, allow_null=True, required=False, help_text="null: the team's per-key limit."
    )

    class Meta:
        ref_name = "ApiKeyLimits"


class ApiKeyOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id", help_text="`key-<prefix>`.")
    object = serializers.SerializerMethodField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiKeyScope.choices))
    endpoints = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="Endpoint slugs it may call; null: all."
    )
    created_at = serializers.DateTimeField(source="created")
    expires_at = serializers.DateTimeField(source="expiry_date", allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked = serializers.BooleanField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    created_by = serializers.SerializerMethodField()
    limits = serializers.SerializerMethodField(
        help_text="The key's own rate limits, each within the team's (null: the team's)."
    )

    def get_object(self, api_key) -> str:
        return "api_key"

    @extend_schema_field(KeyLimitsSerializer(allow_null=True))
    def get_limits(self, api_key: ApiKey) -> dict | None:
        return apikeys.apikey_limits(api_key=api_key)

    def get_created_by(self, api_key: ApiKey) -> str | None:
        return api_key.created_by.email if api_key.created_by else None


def _team_body(team: Team, *, role: str | None) -> dict:
    return TeamOutputSerializer(team, context={"roles": {team.pk: role}}).data


# --- me ----------------------------------------------------------------------------------------


class MeUserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    full_name = serializers.CharField()
    is_staff = serializers.BooleanField()


class MeMembershipSerializer(serializers.Serializer):
    team = TeamOutputSerializer()
    role = serializers.ChoiceField(choices=Role.choices)


class MeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        object = serializers.CharField(help_text="Always `me`.")
        auth = serializers.ChoiceField(choices=["session", "api_key"])
        user = MeUserSerializer(allow_null=True)
        active_team = TeamOutputSerializer(allow_null=True)
        role = serializers.ChoiceField(choices=Role.choices, allow_null=True)
        memberships = MeMembershipSerializer(many=True)
        api_key = ApiKeyOutputSerializer(allow_null=True)

        class Meta:
            ref_name = "Me"

    @extend_schema(
        operation_id="me_retrieve",
        summary="Who am I: the user, the active team and role, all memberships (or the API key's team and scopes)",
        responses={200: OutputSerializer, 401: ErrorSerializer},
    )
    def get(self, request):
        api_key = _api_key_of(request)
        if api_key is not None:
            return Response(
                {
                    "object": "me",
                    "auth": "api_key",
                    "user": None,
                    "active_team": _team_body(api_key.team, role=None),
                    "role": None,
                    "memberships": [],
                    "api_key": ApiKeyOutputSerializer(api_key).data,
                }
            )
        user = request.user
        active = selectors.active_membership_for(user=user)
        memberships = selectors.membership_list_for_user(user=user)
        return Response(
            {
                "object": "me",
                "auth": "session",
                "user": MeUserSerializer(user).data,
                "active_team": _team_body(active.team, role=active.role) if active else None,
                "role": active.role if active else None,
                "memberships": [
                    {"team": _team_body(m.team, role=m.role), "role": m.role} for m in memberships
                ],
                "api_key": None,
            }
        )


# --- teams -------------------------------------------------------------------------------------


class TeamListApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)

        class Meta:
            ref_name = "TeamCreateInput"

    @extend_schema(
        operation_id="teams_list",
        summary="The caller's teams (an API key sees its own team)",
        parameters=PAGE_PARAMS,
        responses={200: list_schema(TeamOutputSerializer, name="TeamList"), **ERRORS},
    )
    def get(self, request):
        api_key = _api_key_of(request)
        if api_key is not None:
            teams = Team.objects.filter(pk=api_key.team_id)
            roles = {}
        else:
            teams = selectors.team_list_for_user(user=request.user)
            roles = dict(selectors.membership_list_for_user(user=request.user).values_list("team_id", "role"))
        page = _page(request, teams, order="name")
        data = TeamOutputSerializer(page.items, many=True, context={"roles": roles}).data
        return Response(list_response_body(page, data))

    @extend_schema(
        operation_id="teams_create",
        summary="Create a team: the caller becomes its owner and switches to it",
        request=InputSerializer,
        responses={201: TeamOutputSerializer, **ERRORS},
    )
    def post(self, request):
        _require_person(request, action="create teams")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        team = services.team_create(user=request.user, name=serializer.validated_data["name"])
        return Response(_team_body(team, role=Role.OWNER), status=status.HTTP_201_CREATED)


class TeamDetailApi(TeamApiView):
    team_url_kwarg = "team_id"
    write_role = Role.ADMIN

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False)

        class Meta:
            ref_name = "TeamUpdateInput"

    @extend_schema(
        operation_id="teams_retrieve",
        summary="One of the caller's teams",
        responses={200: TeamOutputSerializer, **ERRORS},
    )
    def get(self, request, team_id):
        return Response(_team_body(self.ctx.team, role=self.ctx.role if self.ctx.user else None))

    @extend_schema(
        operation_id="teams_update",
        summary="Rename a team (owners and admins)",
        request=InputSerializer,
        responses={200: TeamOutputSerializer, **ERRORS},
    )
    def patch(self, request, team_id):
        _require_person(self.ctx, action="change the team")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        refuse_empty_patch(serializer.validated_data, fields=["name"])
        team = services.team_update(actor=request.user, team=self.ctx.team, **serializer.validated_data)
        return Response(_team_body(team, role=self.ctx.role))


class TeamSwitchApi(TeamApiView):
    team_url_kwarg = "team_id"
    write_role = Role.VIEWER  # switching changes only the caller's own preference

    @extend_schema(
        operation_id="teams_switch",
        summary="Make this team the caller's active team",
        request=None,
        responses={200: TeamOutputSerializer, **ERRORS},
    )
    def post(self, request, team_id):
        _require_person(self.ctx, action="switch teams (a key always acts on its own team)")
        team = services.team_switch(user=request.user, team_id=self.ctx.team.pk)
        return Response(_team_body(team, role=self.ctx.role))


# --- members -----------------------------------------------------------------------------------


class MemberListApi(TeamApiView):
    team_url_kwarg = "team_id"

    @extend_schema(
        operation_id="team_members_list",
        summary="The team's members, by e-mail",
        parameters=PAGE_PARAMS,
        responses={200: list_schema(MemberOutputSerializer, name="MemberList"), **ERRORS},
    )
    def get(self, request, team_id):
        after = request.query_params.get("after")
        if after and not (after.isdigit() and len(after) <= 18):
            raise InvalidInput(f"after must be a member's user id, got {after!r}.", field="after")
        page = _page(request, selectors.member_list(team=self.ctx.team), order="email")
        return Response(list_response_body(page, MemberOutputSerializer(page.items, many=True).data))


class MemberDetailApi(TeamApiView):
    team_url_kwarg = "team_id"
    # Who may change or remove whom depends on both roles; the services decide (a viewer may leave).
    write_role = Role.VIEWER

    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Role.choices)

        class Meta:
            ref_name = "MemberUpdateInput"

    def _body(self, user_id) -> dict:
        return MemberOutputSerializer(selectors.member_list(team=self.ctx.team).get(pk=user_id)).data

    @extend_schema(
        operation_id="team_members_retrieve",
        summary="One member",
        responses={200: MemberOutputSerializer, **ERRORS},
    )
    def get(self, request, team_id, user_id):
        membership = selectors.member_get(team=self.ctx.team, user_id=user_id)
        return Response(self._body(membership.user_id))

    @extend_schema(
        operation_id="team_members_update",
        summary="Change a member's role (owners and admins; making or unmaking an owner needs an owner)",
        request=InputSerializer,
        responses={200: MemberOutputSerializer, **ERRORS},
    )
    def patch(self, request, team_id, user_id):
        _require_person(self.ctx, action="change roles")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.member_change_role(
            actor=request.user, team=self.ctx.team, user_id=user_id, role=serializer.validated_data["role"]
        )
        return Response(self._body(membership.user_id))

    @extend_schema(
        operation_id="team_members_destroy",
        summary="Remove a member (or leave, for one's own user id); never the last owner",
        responses={204: None, **ERRORS},
    )
    def delete(self, request, team_id, user_id):
        _require_person(self.ctx, action="remove members")
        services.member_remove(actor=request.user, team=self.ctx.team, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamLeaveApi(TeamApiView):
    team_url_kwarg = "team_id"
    write_role = Role.VIEWER

    @extend_schema(
        operation_id="teams_leave",
        summary="Leave the team (refused for its last owner)",
        request=None,
        responses={204: None, **ERRORS},
    )
    def post(self, request, team_id):
        _require_person(self.ctx, action="leave a team")
        services.team_leave(user=request.user, team=self.ctx.team)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- invitations -------------------------------------------------------------------------------


class InvitationListApi(TeamApiView):
    team_url_kwarg = "team_id"
    write_role = Role.VIEWER  # the service names the rule (owners and admins) in its 403

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)

        class Meta:
            ref_name = "InvitationCreateInput"

    class CreatedSerializer(InvitationOutputSerializer):
        accept_url = serializers.URLField(help_text="The invitation link; shown only in this response.")

        class Meta:
            ref_name = "InvitationCreated"

    @extend_schema(
        operation_id="team_invitations_list",
        summary="The team's invitations, newest first",
        parameters=[*PAGE_PARAMS, OpenApiParameter("status", str, enum=[s.value for s in Invitation.Status])],
        responses={200: list_schema(InvitationOutputSerializer, name="InvitationList"), **ERRORS},
    )
    def get(self, request, team_id):
        wanted = request.query_params.get("status") or None
        if wanted and wanted not in Invitation.Status.values:
            raise InvalidInput(f"Unknown status {wanted!r}.", field="status")
        page = _page(
            request, selectors.invitation_list(team=self.ctx.team, status=wanted), order="-created_at"
        )
        return Response(list_response_body(page, InvitationOutputSerializer(page.items, many=True).data))

    @extend_schema(
        operation_id="team_invitations_create",
        summary="Invite someone by link (owners and admins): the link is e-mailed to them and returned once here",
        request=InputSerializer,
        responses={201: CreatedSerializer, **ERRORS},
    )
    def post(self, request, team_id):
        _require_person(self.ctx, action="invite people")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation, token = services.invitation_create(
            actor=request.user, team=self.ctx.team, **serializer.validated_data
        )
        link = invitation_deliver(request=request, invitation=invitation, token=token)
        body = dict(InvitationOutputSerializer(invitation).data, accept_url=link)
        return Response(body, status=status.HTTP_201_CREATED)


class InvitationDetailApi(TeamApiView):
    team_url_kwarg = "team_id"
    write_role = Role.VIEWER

    @extend_schema(
        operation_id="team_invitations_retrieve",
        summary="One invitation",
        responses={200: InvitationOutputSerializer, **ERRORS},
    )
    def get(self, request, team_id, invitation_id):
        invitation = selectors.invitation_get(team=self.ctx.team, invitation_id=invitation_id)
        return Response(InvitationOutputSerializer(invitation).data)

    @extend_schema(
        operation_id="team_invitations_destroy",
        summary="Revoke a pending invitation (owners and admins)",
        responses={200: InvitationOutputSerializer, **ERRORS},
    )
    def delete(self, request, team_id, invitation_id):
        _require_person(self.ctx, action="revoke invitations")
        invitation = selectors.invitation_get(team=self.ctx.team, invitation_id=invitation_id)
        invitation = services.invitation_revoke(actor=request.user, team=self.ctx.team, invitation=invitation)
        return Response(InvitationOutputSerializer(invitation).data)


class InvitationTokenInputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The token at the end of the invitation link.")

    class Meta:
        ref_name = "InvitationTokenInput"


class InvitationAcceptApi(APIView):
    @extend_schema(
        operation_id="invitations_accept",
        summary="Accept an invitation as the invited, signed-in user; switches to the team",
        request=InvitationTokenInputSerializer,
        responses={200: TeamOutputSerializer, **ERRORS},
    )
    def post(self, request):
        _require_person(request, action="accept invitations")
        serializer = InvitationTokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.invitation_accept(user=request.user, token=serializer.validated_data["token"])
        return Response(_team_body(membership.team, role=membership.role))


class InvitationDeclineApi(APIView):
    @extend_schema(
        operation_id="invitations_decline",
        summary="Decline an invitation as the invited, signed-in user",
        request=InvitationTokenInputSerializer,
        responses={200: InvitationOutputSerializer, **ERRORS},
    )
    def post(self, request):
        _require_person(request, action="decline invitations")
        serializer = InvitationTokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = services.invitation_decline(user=request.user, token=serializer.validated_data["token"])
        return Response(InvitationOutputSerializer(invitation).data)


# --- API keys (of the active team, or of the calling key's team) --------------------------------


def _limits_input(ctx: TeamContext, validated: dict, name: str, missing=None):
    """The `limits` of a key create/update; setting them is for the team's owners and admins."""
    if name not in validated:
        return missing
    ctx.require(role=Role.ADMIN, scope="write")
    limits = validated[name]
    return None if limits is None else dict(limits)


class ApiKeyListApi(TeamApiView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=50)
        scopes = serializers.ListField(
            child=serializers.ChoiceField(choices=ApiKeyScope.choices), allow_empty=False
        )
        expires_at = serializers.DateTimeField(required=False, allow_null=True)
        endpoints = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True)
        limits = KeyLimitsSerializer(required=False, allow_null=True)

        class Meta:
            ref_name = "ApiKeyCreateInput"

    class CreatedSerializer(ApiKeyOutputSerializer):
        key = serializers.CharField(
            help_text="The full key, `tf_<prefix>.<secret>`: shown only in this response."
        )

        class Meta:
            ref_name = "ApiKeyCreated"

    @extend_schema(
        operation_id="api_keys_list",
        summary="The team's API keys, newest first (revoked ones included)",
        parameters=PAGE_PARAMS,
        responses={200: list_schema(ApiKeyOutputSerializer, name="ApiKeyList"), **ERRORS},
    )
    def get(self, request):
        keys = apikeys.apikey_list(team=self.ctx.team)
        after = request.query_params.get("after")
        if after:
            after = apikeys.apikey_get(team=self.ctx.team, key_id=after).pk
        page = _page(request, keys, order="-created", after=after or "")
        data = ApiKeyOutputSerializer(page.items, many=True).data
        return Response(list_response_body(page, data, id_of=lambda key: key.public_id))

    @extend_schema(
        operation_id="api_keys_create",
        summary="Create an API key; the response carries the full key once",
        request=InputSerializer,
        responses={201: CreatedSerializer, **ERRORS},
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, raw = apikeys.apikey_create(
            team=self.ctx.team,
            name=serializer.validated_data["name"],
            scopes=serializer.validated_data["scopes"],
            expires_at=serializer.validated_data.get("expires_at"),
            user=self.ctx.user,
            acting_key=self.ctx.api_key,
            endpoints=serializer.validated_data.get("endpoints"),
            limits=_limits_input(self.ctx, serializer.validated_data, "limits"),
        )
        return Response(dict(ApiKeyOutputSerializer(api_key).data, key=raw), status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(TeamApiView):
    class UpdateSerializer(serializers.Serializer):
        endpoints = serializers.ListField(child=serializers.CharField(), allow_null=True, required=False)
        limits = KeyLimitsSerializer(required=False, allow_null=True)

        class Meta:
            ref_name = "ApiKeyUpdateInput"

    @extend_schema(
        operation_id="api_keys_partial_update",
        summary="Restrict a key to some endpoints (null: every endpoint) and/or set its own rate limits "
        "(team admins; within the team's per-key limits, else a 400 naming the field)",
        request=UpdateSerializer,
        responses={200: ApiKeyOutputSerializer, **ERRORS},
    )
    def patch(self, request, key_id):
        serializer = self.UpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        refuse_empty_patch(serializer.validated_data, fields=["endpoints", "limits"])
        api_key = apikeys.apikey_get(team=self.ctx.team, key_id=key_id)
        api_key = apikeys.apikey_update(
            team=self.ctx.team,
            api_key=api_key,
            endpoints=serializer.validated_data.get("endpoints", apikeys.UNCHANGED),
            limits=_limits_input(self.ctx, serializer.validated_data, "limits", missing=apikeys.UNCHANGED),
            acting_key=self.ctx.api_key,
        )
        return Response(ApiKeyOutputSerializer(api_key).data)

    @extend_schema(
        operation_id="api_keys_retrieve",
        summary="One API key (never its secret)",
        responses={200: ApiKeyOutputSerializer, **ERRORS},
    )
    def get(self, request, key_id):
        return Response(ApiKeyOutputSerializer(apikeys.apikey_get(team=self.ctx.team, key_id=key_id)).data)

    @extend_schema(
        operation_id="api_keys_destroy",
        summary="Revoke an API key for good",
        responses={200: ApiKeyOutputSerializer, **ERRORS},
    )
    def delete(self, request, key_id):
        api_key = apikeys.apikey_get(team=self.ctx.team, key_id=key_id)
        api_key = apikeys.apikey_revoke(team=self.ctx.team, api_key=api_key, user=self.ctx.user)
        return Response(ApiKeyOutputSerializer(api_key).data)
