"""Personas (healthchecks' style), each declared once here with one role:

- alice owns a team ("Alice's Team"); adam is an admin, bob a member, vera a viewer of it;
- charlie is an outsider with a team of his own;
- dora has an account but no team (invited, or just signed up);
- olga is staff (a platform operator) with no team role.
"""

import pytest

# The engine's tests run without Django (`-p no:django`): Django-bound imports happen only once
# Django is configured, so this file stays importable there.
try:
    from django.conf import settings

    _DJANGO_READY = settings.configured
except ImportError:  # pragma: no cover
    _DJANGO_READY = False

if _DJANGO_READY:
    from rest_framework.test import APIClient

    from tests.factories import MembershipFactory, TeamFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_brakes():
    """Brute-force counters live in Redis and outlive a test: every test starts with none."""
    if _DJANGO_READY:
        from django.core.cache import cache

        cache.clear()
    yield


@pytest.fixture
def team(db):
    return TeamFactory(name="Alice's Team")


@pytest.fixture
def alice(team):
    user = UserFactory(email="alice@example.com")
    MembershipFactory(team=team, user=user, role="owner")
    return user


@pytest.fixture
def bob(team):
    user = UserFactory(email="bob@example.com")
    MembershipFactory(team=team, user=user, role="member")
    return user


@pytest.fixture
def vera(team):
    user = UserFactory(email="vera@example.com")
    MembershipFactory(team=team, user=user, role="viewer")
    return user


@pytest.fixture
def adam(team):
    user = UserFactory(email="adam@example.com")
    MembershipFactory(team=team, user=user, role="admin")
    return user


@pytest.fixture
def dora(db):
    return UserFactory(email="dora@example.com")


@pytest.fixture
def olga(db):
    return UserFactory(email="olga@ops.example.com", is_staff=True)


@pytest.fixture
def charlie_team(db):
    return TeamFactory(name="Charlie's Team")


@pytest.fixture
def charlie(charlie_team):
    user = UserFactory(email="charlie@example.com")
    MembershipFactory(team=charlie_team, user=user, role="owner")
    return user


def _client_for(user):
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(alice):
    return _client_for(alice)


@pytest.fixture
def bob_client(bob):
    return _client_for(bob)


@pytest.fixture
def vera_client(vera):
    return _client_for(vera)


@pytest.fixture
def charlie_client(charlie):
    return _client_for(charlie)


@pytest.fixture
def adam_client(adam):
    return _client_for(adam)


@pytest.fixture
def dora_client(dora):
    return _client_for(dora)


@pytest.fixture
def olga_client(olga):
    return _client_for(olga)


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def start_worker(transactional_db):
    """Start real Celery worker processes: `start_worker(queues="default,cpu", name="w1")`.
    Each is stopped at the end of the test."""
    from tests.celery_harness import WorkerProcess, purge_broker

    purge_broker()
    started: list[WorkerProcess] = []

    def start(
        *, queues: str = "default,cpu", name: str = "worker", env: dict | None = None, wait: bool = True
    ):
        worker = WorkerProcess(queues=queues, name=name, env=env)
        started.append(worker)
        return worker.wait_ready() if wait else worker

    yield start
    for worker in started:
        worker.stop()


# --- Browser tests (Playwright's sync API on Debian's Chromium) -----------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser(monkeypatch):
    """A headless Chromium; mark the test `browser` and skip it when /usr/bin/chromium is missing."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls in the test are still
    # plain synchronous code, between browser steps.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


# The tiny random models the engine and serving-runtime tests train and serve (Django-free: the
# builders import only transformers), built once per session.
@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.engine import tiny_models

    return str(tiny_models.build_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.engine import tiny_models

    return str(tiny_models.build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2")))
