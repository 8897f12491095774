"""Model signals that keep the per-process access caches honest (`accounts.access_stamps`): any
save or delete of a key, a membership or a team, whichever code path makes it (services, the admin,
a cascade), bumps the team's access stamp. (QuerySet.update sends no signal: code that changes these
rows with it bumps the stamp itself, as the admin's bulk revoke does.)"""

from django.db.models.signals import post_delete, post_save

from accounts import access_stamps
from accounts.models import ApiKey, Membership, Team


def _bump_for_team_row(sender, instance, **kwargs) -> None:
    access_stamps.bump(instance.team_id)


def _bump_for_team(sender, instance, **kwargs) -> None:
    access_stamps.bump(instance.pk)


def connect() -> None:
    for model in (ApiKey, Membership):
        post_save.connect(_bump_for_team_row, sender=model, dispatch_uid=f"access-stamp-{model.__name__}")
        post_delete.connect(
            _bump_for_team_row, sender=model, dispatch_uid=f"access-stamp-del-{model.__name__}"
        )
    post_save.connect(_bump_for_team, sender=Team, dispatch_uid="access-stamp-Team")
    post_delete.connect(_bump_for_team, sender=Team, dispatch_uid="access-stamp-del-Team")
