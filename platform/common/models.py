"""Base models every Tuneforge table builds on."""

import secrets as _secrets  # `secrets` would be a forbidden module name in this tree, not the stdlib

from django.db import models

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_public_id(prefix: str, length: int = 20) -> str:
    """An OpenAI-style id such as `ftjob-3k9...`: unguessable, so ids leak nothing about volume."""
    return f"{prefix}-" + "".join(_secrets.choice(_ALPHABET) for _ in range(length))


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class PublicIdModel(TimeStampedModel):
    """A row exposed through the API under a prefixed string id (set `id_prefix` on the subclass)."""

    id_prefix: str = "obj"
    id = models.CharField(primary_key=True, max_length=40, editable=False)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self.id:
            self.id = new_public_id(self.id_prefix)
        super().save(*args, **kwargs)


class TeamOwnedModel(PublicIdModel):
    """Every row a team owns carries its team, so that every query can be scoped to it."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True
