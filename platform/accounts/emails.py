"""E-mails from accounts (the console backend prints them in development)."""

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import Invitation


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
