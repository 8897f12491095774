from django.urls import path

from accounts import apis

urlpatterns = [
    path("me", apis.MeApi.as_view(), name="api-me"),
    path("teams", apis.TeamListApi.as_view(), name="api-teams"),
    path("teams/<str:team_id>", apis.TeamDetailApi.as_view(), name="api-team"),
    path("teams/<str:team_id>/switch", apis.TeamSwitchApi.as_view(), name="api-team-switch"),
    path("teams/<str:team_id>/leave", apis.TeamLeaveApi.as_view(), name="api-team-leave"),
    path("teams/<str:team_id>/members", apis.MemberListApi.as_view(), name="api-team-members"),
    path("teams/<str:team_id>/members/<str:user_id>", apis.MemberDetailApi.as_view(), name="api-team-member"),
    path("teams/<str:team_id>/invitations", apis.InvitationListApi.as_view(), name="api-team-invitations"),
    path(
        "teams/<str:team_id>/invitations/<str:invitation_id>",
        apis.InvitationDetailApi.as_view(),
        name="api-team-invitation",
    ),
    path("invitations/accept", apis.InvitationAcceptApi.as_view(), name="api-invitation-accept"),
    path("invitations/decline", apis.InvitationDeclineApi.as_view(), name="api-invitation-decline"),
    path("api-keys", apis.ApiKeyListApi.as_view(), name="api-keys"),
    path("api-keys/<str:key_id>", apis.ApiKeyDetailApi.as_view(), name="api-key"),
]
