from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("signup/sent/", views.signup_sent, name="signup_sent"),
    path("signup/confirm/<uidb64>/<token>/", views.signup_confirm, name="signup_confirm"),
    path("password/change/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            extra_context={"login_url": reverse_lazy("accounts:login")}
        ),
        name="password_reset_complete",
    ),
    path("teams/", views.team_list, name="team_list"),
    path("teams/new/", views.team_new, name="team_new"),
    path("teams/switch/", views.team_switch, name="team_switch"),
    path("teams/<str:team_id>/", views.team_detail, name="team_detail"),
    path("teams/<str:team_id>/rename/", views.team_rename, name="team_rename"),
    path("teams/<str:team_id>/leave/", views.team_leave, name="team_leave"),
    path("teams/<str:team_id>/members/<str:user_id>/role/", views.member_role, name="member_role"),
    path("teams/<str:team_id>/members/<str:user_id>/remove/", views.member_remove, name="member_remove"),
    path("teams/<str:team_id>/invitations/", views.invitation_create, name="invitation_create"),
    path(
        "teams/<str:team_id>/invitations/<str:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("invitations/<str:token>/", views.invitation, name="invitation"),
    path("invitations/<str:token>/accept/", views.invitation_accept, name="invitation_accept"),
    path("invitations/<str:token>/decline/", views.invitation_decline, name="invitation_decline"),
    path("api-keys/", views.api_keys, name="api_keys"),
    path("api-keys/<str:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("api-keys/<str:key_id>/limits/", views.api_key_limits, name="api_key_limits"),
]
