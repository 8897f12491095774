"""factory_boy factories shared by every app's tests."""

import factory
from django.utils.text import slugify

from accounts.models import Membership, Team, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def _save_password(user, create, extracted, **kwargs):
        if create:
            user.save(update_fields=["password"])


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.LazyAttribute(lambda team: slugify(team.name)[:50] or "team")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    team = factory.SubFactory(TeamFactory)
    user = factory.SubFactory(UserFactory)
    role = "member"


class InvitationFactory(factory.django.DjangoModelFactory):
    """A pending invitation made like the service makes one; its link token is on the object as `.token`
    (only the hash is stored). Pass `expires_at` in the past for an expired one."""

    class Meta:
        model = "accounts.Invitation"

    team = factory.SubFactory(TeamFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@example.com")
    role = "member"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        import secrets as _secrets
        from datetime import timedelta

        from django.utils import timezone

        from accounts.selectors import invitation_token_hash

        token = _secrets.token_urlsafe(32)
        kwargs["token_hash"] = invitation_token_hash(token)
        kwargs.setdefault("expires_at", timezone.now() + timedelta(days=7))
        invitation = super()._create(model_class, *args, **kwargs)
        invitation.token = token
        return invitation


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """A team API key made by the real service; the full key is on the object as `.raw`."""

    class Meta:
        model = "accounts.ApiKey"

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"key {n}")
    scopes = factory.LazyFunction(lambda: ["read", "write", "inference"])
    expiry_date = None
    created_by = None

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from accounts.apikeys import apikey_create
        from accounts.models import Membership

        if kwargs["created_by"] is None:
            # A key acts for a member: by default the team's owner (made when there is none).
            owner = (
                Membership.objects.filter(team=kwargs["team"], role="owner").select_related("user").first()
            )
            kwargs["created_by"] = (
                owner.user
                if owner
                else MembershipFactory(team=kwargs["team"], user=UserFactory(), role="owner").user
            )
        api_key, raw = apikey_create(
            team=kwargs["team"],
            name=kwargs["name"],
            scopes=kwargs["scopes"],
            expires_at=kwargs["expiry_date"],
            user=kwargs["created_by"],
        )
        api_key.raw = raw
        return api_key


def _now():
    from django.utils import timezone

    return timezone.now()


class WorkerNodeFactory(factory.django.DjangoModelFactory):
    """A registered GPU worker that heartbeat just now; pass `last_heartbeat_at` to age it."""

    class Meta:
        model = "workers.WorkerNode"
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"gpu{n}@node-{n}.example")
    host = factory.LazyAttribute(lambda w: w.name.split("@", 1)[1])
    pid = factory.Sequence(lambda n: 1000 + n)
    queues = factory.LazyFunction(lambda: ["gpu", "gpu.h200"])
    device_kind = "cuda"
    device_name = "NVIDIA H200"
    device_memory_mb = 143771
    device_class = "h200"
    cuda_version = "12.8"
    torch_version = "2.13.0"
    utilisation = factory.LazyFunction(
        lambda: {"gpu_percent": 73, "memory_used_mb": 40960, "memory_total_mb": 143771}
    )
    last_heartbeat_at = factory.LazyFunction(_now)
    started_at = factory.LazyFunction(_now)


class DatasetVersionFactory(factory.django.DjangoModelFactory):
    """A dataset version made by the real upload service (validation, normalization, storage) from a
    sample file: `DatasetVersionFactory(team=team)` uploads samples/banking77/train_4intents.csv.
    Pass `source=<path>`, `name=`, `dataset=` (to add a version to it), `user=`, or upload options
    (`validation_fraction=`, `seed=`, `label_names=`, `pii_masking=`, ...)."""

    class Meta:
        model = "datasets_app.DatasetVersion"

    team = factory.SubFactory(TeamFactory)

    @classmethod
    def _create(cls, model_class, *args, team, source=None, name=None, dataset=None, user=None, **options):
        from pathlib import Path

        from django.core.files.uploadedfile import SimpleUploadedFile

        from datasets_app import services

        path = (
            Path(source)
            if source
            else Path(__file__).resolve().parents[1] / "samples/banking77/train_4intents.csv"
        )
        upload = SimpleUploadedFile(path.name, path.read_bytes())
        upload_options = services.UploadOptions(**options)
        if dataset is not None:
            outcome = services.dataset_version_create(
                team=team, user=user, dataset=dataset, file=upload, filename=path.name, options=upload_options
            )
        else:
            outcome = services.dataset_create_from_upload(
                team=team, user=user, file=upload, filename=path.name, name=name, options=upload_options
            )
        return outcome.version
