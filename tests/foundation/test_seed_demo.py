from io import StringIO

from django.core.management import call_command
from django.test import override_settings

from accounts.models import Membership, Team, User
from finetune.models import BaseModel


@override_settings(DEBUG=True)
def test_seeding_twice_creates_one_team_one_admin_and_the_default_base_model(db):
    first, second = StringIO(), StringIO()
    call_command("seed_demo", stdout=first)
    call_command("seed_demo", stdout=second)
    assert Team.objects.filter(slug="demo").count() == 1
    admin = User.objects.get(email="admin@tuneforge.local")
    assert admin.is_staff and admin.is_superuser and admin.check_password("tuneforge-admin")
    assert Membership.objects.get(user=admin).role == "owner"
    default = BaseModel.objects.get(is_default=True)
    assert default.name == "sentence-transformers/all-MiniLM-L6-v2" and default.kind == "encoder"
    assert "tuneforge-admin" in first.getvalue()
    # A re-run must not claim a password the admin may have changed since.
    assert "tuneforge-admin" not in second.getvalue()


def test_seeding_refuses_outside_a_debug_demo(db):
    err = StringIO()
    call_command("seed_demo", stderr=err)
    assert "only runs with DEBUG" in err.getvalue()
    assert not User.objects.filter(email="admin@tuneforge.local").exists()
