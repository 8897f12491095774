"""Web pages for accounts, teams, invitations and API keys (server-rendered, over the same services
as the API). A refused action re-renders its page with the reason and the API's status code."""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlsafe_base64_decode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import apikeys, selectors, services, throttling
from accounts.emails import invitation_deliver, signup_deliver
from accounts.forms import (
    ApiKeyForm,
    EmailAuthenticationForm,
    InvitationForm,
    PasswordChangeForm,
    RoleForm,
    SetPasswordForm,
    SignUpForm,
    TeamForm,
)
from accounts.models import ROLE_RANK, Invitation, Membership, Role, User, role_at_least
from common.errors import ApplicationError, NotFound

# Service fields that a form calls differently.
FORM_FIELD = {"password": "password1"}


def _apply_error(form, exc: ApplicationError) -> None:
    field = FORM_FIELD.get(exc.field, exc.field)
    form.add_error(field if field in form.fields else None, exc.message)


def _safe_next(request, default: str) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


# --- signing up and in -------------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Sign-in, braked per account and per client address after repeated failures (429 with
    Retry-After; the password is not even checked while braked)."""

    form_class = EmailAuthenticationForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        wait = throttling.login_retry_after(request, email=request.POST.get("username", ""))
        if wait:
            message = _(
                "Too many failed sign-ins for this account or from this address. Try again in %(minutes)s minute(s)."
            ) % {"minutes": (wait + 59) // 60}
            response = self.render_to_response(
                self.get_context_data(form=self.form_class(request), lockout_message=message), status=429
            )
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        if form.data.get("username") and form.data.get("password"):
            throttling.login_failed(self.request, email=form.data["username"])
        return super().form_invalid(form)

    def form_valid(self, form):
        throttling.login_succeeded(email=form.get_user().email)
        return super().form_valid(form)


def signup(request):
    """Sign-up answers alike whether or not the address has an account (like password reset):
    the same redirect to "check your e-mail", and the mailbox gets either a confirmation link or,
    for a taken address, a note to its owner. Only refusals of what was typed show here."""
    if request.user.is_authenticated:
        return redirect(_safe_next(request, reverse("home")))
    form = SignUpForm(request.POST or None, initial={"email": request.GET.get("email", "")})
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                user, free = services.user_sign_up(
                    email=form.cleaned_data["email"],
                    password=form.cleaned_data["password1"],
                    full_name=form.cleaned_data["full_name"],
                )
            except ApplicationError as exc:
                _apply_error(form, exc)
                status = exc.status_code
            else:
                signup_deliver(
                    request=request, user=user, address_was_free=free, next_url=_safe_next(request, "")
                )
                return redirect("accounts:signup_sent")
        else:
            status = 400
    return render(
        request, "registration/signup.html", {"form": form, "next": _safe_next(request, "")}, status=status
    )


def signup_sent(request):
    return render(request, "registration/signup_sent.html")


def _signup_user(uidb64: str) -> User | None:
    try:
        return User.objects.get(pk=urlsafe_base64_decode(uidb64).decode())
    except (ValueError, TypeError, OverflowError, ValidationError, User.DoesNotExist):
        return None


def signup_confirm(request, uidb64, token):
    """The e-mailed link. Opening it (which mail scanners do too) only shows a button; the POST
    activates the account and signs in."""
    user = _signup_user(uidb64)
    valid = (
        user is not None and not user.is_active and services.signup_token_generator.check_token(user, token)
    )
    if request.method == "POST" and user is not None:
        try:
            services.user_confirm(user=user, token=token)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, _("Welcome to Tuneforge, %(email)s.") % {"email": user.email})
            default = reverse("home") if user.memberships.exists() else reverse("accounts:team_new")
            return redirect(_safe_next(request, default))
        valid = False
    return render(
        request,
        "registration/signup_confirm.html",
        {"valid": valid, "email": user.email if valid else "", "next": _safe_next(request, "")},
        status=200 if valid else 400,
    )


class PasswordChangeView(auth_views.PasswordChangeView):
    form_class = PasswordChangeForm
    success_url = reverse_lazy("accounts:password_change_done")


class PasswordResetView(auth_views.PasswordResetView):
    success_url = reverse_lazy("accounts:password_reset_done")
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    form_class = SetPasswordForm
    success_url = reverse_lazy("accounts:password_reset_complete")


# --- teams -------------------------------------------------------------------------------------


def _membership_or_404(request, team_id: str) -> Membership:
    try:
        return selectors.membership_for(user=request.user, team_id=team_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


@login_required
def team_list(request):
    return render(
        request,
        "accounts/team_list.html",
        {"memberships": selectors.membership_list_for_user(user=request.user), "form": TeamForm()},
    )


@login_required
def team_new(request):
    form = TeamForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                team = services.team_create(user=request.user, name=form.cleaned_data["name"])
            except ApplicationError as exc:
                _apply_error(form, exc)
                status = exc.status_code
            else:
                messages.success(
                    request, _("Team %(name)s created; you are its owner.") % {"name": team.name}
                )
                return redirect("accounts:team_detail", team_id=team.pk)
        else:
            status = 400
    return render(request, "accounts/team_new.html", {"form": form}, status=status)


@login_required
@require_POST
def team_switch(request):
    try:
        team = services.team_switch(user=request.user, team_id=request.POST.get("team", ""))
    except NotFound as exc:
        raise Http404(exc.message) from None
    messages.success(request, _("Now working in %(name)s.") % {"name": team.name})
    return HttpResponseRedirect(_safe_next(request, request.META.get("HTTP_REFERER") or reverse("home")))


def _team_page(request, membership: Membership, *, status: int = 200, **context):
    team, role = membership.team, membership.role
    can_manage = role_at_least(role, Role.ADMIN)
    allowed_roles = [r for r in Role if ROLE_RANK[r] <= ROLE_RANK[Role(role)]]
    members = list(selectors.member_list(team=team).order_by("email"))
    for member in members:
        # An admin may change anyone but an owner; an owner anyone.
        member.can_edit = can_manage and (role == Role.OWNER or member.role != Role.OWNER)
        member.role_label = Role(member.role).label
    context.setdefault("invite_form", InvitationForm(allowed_roles=allowed_roles))
    context.setdefault("rename_form", TeamForm(initial={"name": team.name}))
    return render(
        request,
        "accounts/team_detail.html",
        {
            "team": team,
            "membership": membership,
            "can_manage": can_manage,
            "is_owner": role == Role.OWNER,
            "members": members,
            "role_choices": [(r.value, r.label) for r in allowed_roles],
            "invitations": selectors.invitation_list(team=team, status=Invitation.Status.PENDING),
            **context,
        },
        status=status,
    )


@login_required
def team_detail(request, team_id):
    return _team_page(request, _membership_or_404(request, team_id))


def _refused(request, membership: Membership, exc: ApplicationError, **context):
    if isinstance(exc, NotFound):
        raise Http404(exc.message)
    messages.error(request, exc.message)
    return _team_page(request, membership, status=exc.status_code, **context)


@login_required
@require_POST
def team_rename(request, team_id):
    membership = _membership_or_404(request, team_id)
    form = TeamForm(request.POST)
    if not form.is_valid():
        return _team_page(request, membership, status=400, rename_form=form)
    try:
        services.team_update(actor=request.user, team=membership.team, name=form.cleaned_data["name"])
    except ApplicationError as exc:
        return _refused(request, membership, exc, rename_form=form)
    messages.success(request, _("Team renamed."))
    return redirect("accounts:team_detail", team_id=team_id)


@login_required
@require_POST
def member_role(request, team_id, user_id):
    membership = _membership_or_404(request, team_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a role: owner, admin, member or viewer."))
        return _team_page(request, membership, status=400)
    try:
        changed = services.member_change_role(
            actor=request.user, team=membership.team, user_id=user_id, role=form.cleaned_data["role"]
        )
    except ApplicationError as exc:
        return _refused(request, membership, exc)
    messages.success(
        request,
        _("%(email)s is now %(role)s.") % {"email": changed.user.email, "role": changed.get_role_display()},
    )
    return redirect("accounts:team_detail", team_id=team_id)


@login_required
@require_POST
def member_remove(request, team_id, user_id):
    membership = _membership_or_404(request, team_id)
    try:
        target = selectors.member_get(team=membership.team, user_id=user_id)
        services.member_remove(actor=request.user, team=membership.team, user_id=user_id)
    except ApplicationError as exc:
        return _refused(request, membership, exc)
    if target.user_id == request.user.pk:
        messages.success(request, _("You left %(team)s.") % {"team": membership.team.name})
        return redirect("accounts:team_list")
    messages.success(request, _("%(email)s was removed from the team.") % {"email": target.user.email})
    return redirect("accounts:team_detail", team_id=team_id)


@login_required
@require_POST
def team_leave(request, team_id):
    membership = _membership_or_404(request, team_id)
    try:
        services.team_leave(user=request.user, team=membership.team)
    except ApplicationError as exc:
        return _refused(request, membership, exc)
    messages.success(request, _("You left %(team)s.") % {"team": membership.team.name})
    return redirect("accounts:team_list")


@login_required
@require_POST
def invitation_create(request, team_id):
    membership = _membership_or_404(request, team_id)
    allowed = [r for r in Role if ROLE_RANK[r] <= ROLE_RANK[Role(membership.role)]]
    form = InvitationForm(request.POST, allowed_roles=allowed)
    if not form.is_valid():
        return _team_page(request, membership, status=400, invite_form=form)
    try:
        invitation, token = services.invitation_create(
            actor=request.user,
            team=membership.team,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
        )
    except ApplicationError as exc:
        if exc.field in form.fields:
            _apply_error(form, exc)
            return _team_page(request, membership, status=exc.status_code, invite_form=form)
        return _refused(request, membership, exc, invite_form=form)
    # The link is rendered in this response only: the token is not stored.
    link = invitation_deliver(request=request, invitation=invitation, token=token)
    messages.success(
        request, _("Invitation for %(email)s created and emailed.") % {"email": invitation.email}
    )
    return _team_page(request, membership, status=201, new_invitation=invitation, new_invitation_link=link)


@login_required
@require_POST
def invitation_revoke(request, team_id, invitation_id):
    membership = _membership_or_404(request, team_id)
    try:
        invitation = selectors.invitation_get(team=membership.team, invitation_id=invitation_id)
        services.invitation_revoke(actor=request.user, team=membership.team, invitation=invitation)
    except ApplicationError as exc:
        return _refused(request, membership, exc)
    messages.success(request, _("The invitation for %(email)s was revoked.") % {"email": invitation.email})
    return redirect("accounts:team_detail", team_id=team_id)


# --- answering an invitation -------------------------------------------------------------------


def _invitation_page(request, token: str, *, invitation=None, problem=None, status=None):
    try:
        invitation = invitation or selectors.invitation_by_token(token=token)
    except NotFound as exc:
        return render(request, "accounts/invitation.html", {"problem": exc.message}, status=404)
    user = request.user if request.user.is_authenticated else None
    problem = problem or services.invitation_problem(invitation=invitation, user=user)
    here = reverse("accounts:invitation", args=[token])
    return render(
        request,
        "accounts/invitation.html",
        {
            "invitation": invitation,
            "token": token,
            "problem": problem.message if problem else None,
            "signin_url": f"{reverse('accounts:login')}?next={here}",
            "signup_url": f"{reverse('accounts:signup')}?next={here}&email={invitation.email}",
            # Offer "sign in" first to someone who has an account, "sign up" first otherwise.
            "has_account": user is None and User.objects.filter(email__iexact=invitation.email).exists(),
        },
        status=status or (problem.status_code if problem else 200),
    )


def invitation(request, token):
    return _invitation_page(request, token)


@login_required
@require_POST
def invitation_accept(request, token):
    try:
        membership = services.invitation_accept(user=request.user, token=token)
    except ApplicationError as exc:
        if isinstance(exc, NotFound):
            return _invitation_page(request, token)
        return _invitation_page(request, token, problem=exc)
    messages.success(
        request,
        _("You joined %(team)s as %(role)s.")
        % {"team": membership.team.name, "role": membership.get_role_display()},
    )
    return redirect("accounts:team_detail", team_id=membership.team_id)


@login_required
@require_POST
def invitation_decline(request, token):
    try:
        invitation = services.invitation_decline(user=request.user, token=token)
    except ApplicationError as exc:
        if isinstance(exc, NotFound):
            return _invitation_page(request, token)
        return _invitation_page(request, token, problem=exc)
    messages.success(request, _("You declined the invitation to %(team)s.") % {"team": invitation.team.name})
    return redirect("home")


# --- API keys ----------------------------------------------------------------------------------


def _api_keys_page(request, *, form=None, status=200, new_key=None, new_key_secret=None):
    membership = request.membership
    if not membership:
        messages.info(request, _("API keys belong to a team: create one or accept an invitation first."))
        return redirect("accounts:team_new")
    team = membership.team
    keys = list(apikeys.apikey_list(team=team))
    for key in keys:
        key.own_limits = apikeys.apikey_limits(api_key=key)
    return render(
        request,
        "accounts/api_keys.html",
        {
            "team": team,
            "can_create": role_at_least(membership.role, Role.MEMBER),
            "can_revoke_any": role_at_least(membership.role, Role.ADMIN),
            "form": form or ApiKeyForm(endpoint_slugs=apikeys.team_endpoint_slugs(team=team)),
            "keys": keys,
            "new_key": new_key,
            "new_key_secret": new_key_secret,
            "now": timezone.now(),
        },
        status=status,
    )


@login_required
def api_keys(request):
    if request.method != "POST":
        return _api_keys_page(request)
    membership = request.membership
    if not membership:
        return _api_keys_page(request)
    form = ApiKeyForm(request.POST, endpoint_slugs=apikeys.team_endpoint_slugs(team=membership.team))
    if not role_at_least(membership.role, Role.MEMBER):
        messages.error(
            request,
            _("Viewers cannot create API keys; ask an owner or admin of %(team)s.")
            % {"team": membership.team.name},
        )
        return _api_keys_page(request, form=form, status=403)
    if not form.is_valid():
        return _api_keys_page(request, form=form, status=400)
    days = form.cleaned_data["expires_in_days"]
    try:
        api_key, raw = apikeys.apikey_create(
            team=membership.team,
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
            user=request.user,
            endpoints=form.cleaned_data.get("endpoints") or None,
        )
    except ApplicationError as exc:
        _apply_error(form, exc)
        return _api_keys_page(request, form=form, status=exc.status_code)
    messages.success(request, _("API key “%(name)s” created.") % {"name": api_key.name})
    return _api_keys_page(request, status=201, new_key=api_key, new_key_secret=raw)


@login_required
@require_POST
def api_key_revoke(request, key_id):
    membership = request.membership
    if not membership:
        raise Http404(_("You belong to no team."))
    try:
        api_key = apikeys.apikey_get(team=membership.team, key_id=key_id)
        apikeys.apikey_revoke(team=membership.team, api_key=api_key, user=request.user)
    except NotFound as exc:
        raise Http404(exc.message) from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return _api_keys_page(request, status=exc.status_code)
    messages.success(request, _("API key %(id)s revoked: it no longer works.") % {"id": api_key.public_id})
    return redirect("accounts:api_keys")


@login_required
@require_POST
def api_key_limits(request, key_id):
    """Team owners and admins set a key's own rate limits (empty: the team's), within the team's."""
    membership = request.membership
    if not membership:
        raise Http404(_("You belong to no team."))
    if not role_at_least(membership.role, Role.ADMIN):
        messages.error(request, _("Only owners and admins set a key's limits."))
        return _api_keys_page(request, status=403)
    limits = {}
    for name in ("requests_per_minute", "tokens_per_minute"):
        raw = request.POST.get(name, "").strip()
        if raw and not raw.isdigit():
            messages.error(request, _("A limit is a whole number, or empty for the team's."))
            return _api_keys_page(request, status=400)
        limits[name] = int(raw) if raw else None
    try:
        api_key = apikeys.apikey_get(team=membership.team, key_id=key_id)
        apikeys.apikey_update(team=membership.team, api_key=api_key, limits=limits)
    except NotFound as exc:
        raise Http404(exc.message) from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return _api_keys_page(request, status=exc.status_code)
    messages.success(request, _("Limits of %(id)s saved.") % {"id": api_key.public_id})
    return redirect("accounts:api_keys")
