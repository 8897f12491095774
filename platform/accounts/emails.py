"""E-mails from accounts (the console backend prints them in development)."""

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlencode, urlsafe_base64_encode

from accounts.models import Invitation, User
from accounts.services import signup_token_generator


def invitation_link(request, token: str) -> str:
    return request.build_absolute_uri(reverse("accounts:invitation", args=[token]))


def invitation_deliver(*, request, invitation: Invitation, token: str) -> str:
    """The invitation's link, also e-mailed to the invitee once the invitation is committed.
    The inviter sees the link too, so a lost e-mail never blocks anyone."""
    link = invitation_link(request, token)
    context = {"invitation": invitation, "link": link, "team": invitation.team}
    subject = render_to_string("accounts/email/invitation_subject.txt", context).strip()
    body = render_to_string("accounts/email/invitation.txt", context)
    transaction.on_commit(
        lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [invitation.email], fail_silently=True)
    )
    return link


def signup_deliver(*, request, user: User, address_was_free: bool, next_url: str = "") -> None:
    """After a sign-up: the confirmation link to a free address, or to a taken one a note for its
    owner (someone tried to sign up with it: sign in, or reset the password). Both leave once the
    sign-up is committed; the page that answers is the same either way."""
    if address_was_free:
        path = reverse(
            "accounts:signup_confirm",
            args=[urlsafe_base64_encode(force_bytes(user.pk)), signup_token_generator.make_token(user)],
        )
        if next_url:
            path = f"{path}?{urlencode({'next': next_url})}"
        context = {"email": user.email, "link": request.build_absolute_uri(path)}
        template = "accounts/email/signup_confirm"
    else:
        context = {
            "email": user.email,
            "login_url": request.build_absolute_uri(reverse("accounts:login")),
            "reset_url": request.build_absolute_uri(reverse("accounts:password_reset")),
        }
        template = "accounts/email/signup_taken"
    subject = render_to_string(f"{template}_subject.txt", context).strip()
    body = render_to_string(f"{template}.txt", context)
    transaction.on_commit(
        lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=True)
    )
