"""Writes about users, teams, memberships and invitations.

Role rules live here, not in views, so the web UI and the API enforce the same ones:
- owners and admins manage members and invitations; only an owner makes, unmakes or removes owners;
- a team always keeps at least one owner (409 when an action would leave it with none);
- anyone may leave a team, except its last owner.
"""

import secrets as _secrets  # `secrets` is a forbidden module name in this tree; this is the stdlib's
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import ROLE_RANK, Invitation, Membership, Role, Team, User, role_at_least
from accounts.selectors import invitation_by_token, invitation_token_hash, member_get, membership_for
from common.errors import Conflict, Forbidden, InvalidInput

TEAM_NAME_MAX = 100


# --- users -------------------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


class SignUpTokenGenerator(PasswordResetTokenGenerator):
    """Links that confirm a sign-up: they stop working once the account is active, or when a new
    sign-up for the same unconfirmed address changes its password (PASSWORD_RESET_TIMEOUT applies)."""

    key_salt = "accounts.services.SignUpTokenGenerator"

    def _make_hash_value(self, user, timestamp):
        return f"{user.pk}{user.password}{user.is_active}{timestamp}{user.email}"


signup_token_generator = SignUpTokenGenerator()


def _validate_email(email: str) -> None:
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidInput(
            f"{email or 'An empty value'} is not a valid e-mail address.", field="email", code="invalid_email"
        ) from None


def user_sign_up(*, email: str, password: str, full_name: str = "") -> tuple[User, bool]:
    """A sign-up that does not tell whether the address already has an account.

    A free address gets an inactive account, which the link e-mailed to it activates (a second
    sign-up before that replaces the password and name, so the newest link is the one that
    works). A taken address is left as it is. Returns the user and whether the address was free:
    the caller e-mails either the confirmation link or the owner a notice, and answers the same.
    The checks that can refuse (address shape, password strength) run before the lookup, and
    look only at what was typed, so they refuse the same way in both cases."""
    email = normalize_email(email)
    full_name = (full_name or "").strip()
    _validate_email(email)
    try:
        validate_password(password, user=User(email=email, full_name=full_name))
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), field="password", code="weak_password") from None
    with transaction.atomic():
        existing = User.objects.select_for_update().filter(email__iexact=email).first()
        if existing is None:
            try:
                with transaction.atomic():
                    user = User.objects.create_user(
                        email=email, password=password, full_name=full_name, is_active=False
                    )
                return user, True
            except IntegrityError:  # the same address signed up a moment ago
                existing = User.objects.get(email__iexact=email)
        if not existing.is_active and existing.last_login is None:  # signed up, never confirmed
            existing.set_password(password)
            existing.full_name = full_name
            existing.save(update_fields=["password", "full_name"])
            return existing, True
    # Hash anyway, so the taken address answers after the same work as a free one.
    make_password(password)
    return existing, False


def user_confirm(*, user: User, token: str) -> User:
    """Activates an account from its sign-up link (the token proves the mailbox)."""
    if user.is_active or not signup_token_generator.check_token(user, token):
        raise InvalidInput(
            "This confirmation link no longer works: it was used, replaced by a newer one, or expired. "
            "Sign in, or sign up again for a new link.",
            code="invalid_signup_link",
        )
    user.is_active = True
    user.save(update_fields=["is_active"])
    return user


# --- teams -------------------------------------------------------------------------------------


def _clean_team_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A team needs a name.", field="name", code="required")
    if len(name) > TEAM_NAME_MAX:
        raise InvalidInput(
            f"A team name has at most {TEAM_NAME_MAX} characters; this one has {len(name)}.", field="name"
        )
    return name


def _unique_team_slug(name: str) -> str:
    base = slugify(name)[:50].strip("-") or "team"
    slug = base
    while Team.objects.filter(slug=slug).exists():
        slug = f"{base}-{_secrets.token_hex(3)}"
    return slug


@transaction.atomic
def team_create(*, user: User, name: str) -> Team:
    """A new team with `user` as its owner; the user switches to it."""
    team = Team.objects.create(name=_clean_team_name(name), slug=_unique_team_slug(name))
    Membership.objects.create(team=team, user=user, role=Role.OWNER)
    user.active_team = team
    user.save(update_fields=["active_team"])
    return team


@transaction.atomic
def team_update(*, actor: User, team: Team, name: str | None = None) -> Team:
    """Renames the team (owners and admins)."""
    _require_manager(actor=actor, team=team, action="rename the team")
    if name is not None:
        team.name = _clean_team_name(name)
        team.save(update_fields=["name", "updated_at"])
    return team


def team_switch(*, user: User, team_id: str) -> Team:
    """Makes one of the user's teams the one the UI acts on."""
    team = membership_for(user=user, team_id=team_id).team
    if user.active_team_id != team.pk:
        user.active_team = team
        user.save(update_fields=["active_team"])
    return team


# --- members -----------------------------------------------------------------------------------


def _role_of(*, actor: User, team: Team) -> str:
    return membership_for(user=actor, team_id=team.pk).role


def _require_manager(*, actor: User, team: Team, action: str) -> str:
    role = _role_of(actor=actor, team=team)
    if not role_at_least(role, Role.ADMIN):
        raise Forbidden(
            f"Only owners and admins can {action}; you are a {role} of {team.name}.", code="insufficient_role"
        )
    return role


def _parse_role(role: str, *, field: str = "role") -> Role:
    try:
        return Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InvalidInput(
            f"Unknown role {role!r}: choose one of {choices}.", field=field, code="invalid_role"
        ) from None


def _lock_owners(team: Team) -> list[int]:
    """Locks the owners' rows, so two owners demoting each other at once cannot leave none."""
    return list(
        Membership.objects.select_for_update()
        .filter(team=team, role=Role.OWNER)
        .values_list("user_id", flat=True)
    )


@transaction.atomic
def member_change_role(*, actor: User, team: Team, user_id, role: str) -> Membership:
    """Gives a member another role. Owners and admins may; making or unmaking an owner needs an owner."""
    new_role = _parse_role(role)
    actor_role = _require_manager(actor=actor, team=team, action="change roles")
    owners = _lock_owners(team)
    membership = member_get(team=team, user_id=user_id)
    if membership.role == new_role:
        return membership
    touches_owner = Role.OWNER in (membership.role, new_role)
    if touches_owner and actor_role != Role.OWNER:
        raise Forbidden(
            "Only an owner can make someone an owner or change an owner's role.", code="owner_only"
        )
    if membership.role == Role.OWNER and owners == [membership.user_id]:
        raise Conflict(
            f"{membership.user.email} is the last owner of {team.name}: make someone else an owner first.",
            code="last_owner",
        )
    membership.role = new_role
    membership.save(update_fields=["role", "updated_at"])
    return membership


def _forget_active_team(user: User, team: Team) -> None:
    if user.active_team_id == team.pk:
        user.active_team = None
        user.save(update_fields=["active_team"])


@transaction.atomic
def member_remove(*, actor: User, team: Team, user_id) -> None:
    """Removes a member (owners and admins; an owner only by an owner), or lets the actor leave."""
    owners = _lock_owners(team)
    membership = member_get(team=team, user_id=user_id)
    if membership.user_id != actor.pk:
        actor_role = _require_manager(actor=actor, team=team, action="remove members")
        if membership.role == Role.OWNER and actor_role != Role.OWNER:
            raise Forbidden("Only an owner can remove an owner.", code="owner_only")
    if membership.role == Role.OWNER and owners == [membership.user_id]:
        who = "You are" if membership.user_id == actor.pk else f"{membership.user.email} is"
        raise Conflict(
            f"{who} the last owner of {team.name}: make someone else an owner first.", code="last_owner"
        )
    membership.delete()
    _forget_active_team(membership.user, team)


def team_leave(*, user: User, team: Team) -> None:
    """The user leaves the team (refused for its last owner)."""
    member_remove(actor=user, team=team, user_id=user.pk)


# --- invitations -------------------------------------------------------------------------------


@transaction.atomic
def invitation_create(
    *, actor: User, team: Team, email: str, role: str = Role.MEMBER
) -> tuple[Invitation, str]:
    """An invitation by link; returns it with the link's token, which is not stored (only its hash)."""
    actor_role = _require_manager(actor=actor, team=team, action="invite people")
    new_role = _parse_role(role)
    if ROLE_RANK[new_role] > ROLE_RANK[Role(actor_role)]:
        raise Forbidden(f"Only an owner can invite someone as {new_role.value}.", code="owner_only")
    email = normalize_email(email)
    _validate_email(email)
    if Membership.objects.filter(team=team, user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member of {team.name}.", field="email", code="already_member")
    now = timezone.now()
    if Invitation.objects.filter(
        team=team, email=email, status=Invitation.Status.PENDING, expires_at__gt=now
    ).exists():
        raise Conflict(
            f"{email} already has a pending invitation to {team.name}: revoke it to send a new one.",
            field="email",
            code="already_invited",
        )
    token = _secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        team=team,
        email=email,
        role=new_role,
        token_hash=invitation_token_hash(token),
        invited_by=actor,
        expires_at=now + timedelta(days=settings.TUNEFORGE_INVITATION_TTL_DAYS),
    )
    return invitation, token


@transaction.atomic
def invitation_revoke(*, actor: User, team: Team, invitation: Invitation) -> Invitation:
    """Revokes a pending invitation, so its link stops working."""
    _require_manager(actor=actor, team=team, action="revoke invitations")
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.status != Invitation.Status.PENDING:
        raise Conflict(
            f"This invitation was already {invitation.status}.", code=f"invitation_{invitation.status}"
        )
    invitation.status = Invitation.Status.REVOKED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at", "updated_at"])
    return invitation


def invitation_problem(*, invitation: Invitation, user: User | None) -> Conflict | Forbidden | None:
    """Why this user cannot answer this invitation now, or None. The web page shows it before any click."""
    if invitation.status != Invitation.Status.PENDING:
        return Conflict(
            f"This invitation was already {invitation.status}; ask {invitation.team.name}'s owners for a new one.",
            code=f"invitation_{invitation.status}",
        )
    if invitation.is_expired:
        return Conflict(
            f"This invitation expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC; ask for a new one.",
            code="invitation_expired",
        )
    if user is not None and normalize_email(user.email) != invitation.email:
        return Forbidden(
            f"This invitation is for {invitation.email}, but you are signed in as {user.email}: "
            f"sign out and sign in (or sign up) as {invitation.email}.",
            code="invitation_email_mismatch",
        )
    return None


def _answerable_invitation(*, user: User, token: str) -> Invitation:
    invitation = invitation_by_token(token=token)
    invitation = Invitation.objects.select_for_update().select_related("team").get(pk=invitation.pk)
    problem = invitation_problem(invitation=invitation, user=user)
    if problem is not None:
        raise problem
    return invitation


@transaction.atomic
def invitation_accept(*, user: User, token: str) -> Membership:
    """The invitee joins the team with the invited role and switches to it."""
    invitation = _answerable_invitation(user=user, token=token)
    if Membership.objects.filter(team=invitation.team, user=user).exists():
        raise Conflict(f"You already belong to {invitation.team.name}.", code="already_member")
    membership = Membership.objects.create(team=invitation.team, user=user, role=invitation.role)
    invitation.status = Invitation.Status.ACCEPTED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at", "updated_at"])
    user.active_team = invitation.team
    user.save(update_fields=["active_team"])
    return membership


@transaction.atomic
def invitation_decline(*, user: User, token: str) -> Invitation:
    """The invitee declines; the link stops working."""
    invitation = _answerable_invitation(user=user, token=token)
    invitation.status = Invitation.Status.DECLINED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at", "updated_at"])
    return invitation
