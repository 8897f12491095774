"""A key acts for its creator: never with more than their current role, and not at all once they
left the team (keys die with membership). Checked on every request, in every process."""

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from accounts import services
from tests.celery_harness import wait_until
from tests.factories import ApiKeyFactory

ROOT = Path(__file__).resolve().parents[2]
GONE = "the key's owner is no longer a member of the team"


def bearer(key) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key.raw}"}


@pytest.mark.django_db
def test_a_removed_members_key_stops_working_and_says_why(anon_client, alice, bob, team):
    key = ApiKeyFactory(team=team, scopes=["read", "write"], created_by=bob)
    assert anon_client.get("/api/v1/api-keys", **bearer(key)).status_code == 200

    services.member_remove(actor=alice, team=team, user_id=bob.pk)

    for path in ("/api/v1/api-keys", "/v1/models"):
        response = anon_client.get(path, **bearer(key))
        assert response.status_code == 401, path
        assert GONE in json.dumps(response.json()), path


@pytest.mark.django_db
def test_a_key_of_a_member_who_left_stops_working(anon_client, bob, team):
    key = ApiKeyFactory(team=team, scopes=["read"], created_by=bob)

    services.team_leave(user=bob, team=team)

    assert anon_client.get("/api/v1/api-keys", **bearer(key)).status_code == 401


@pytest.mark.django_db
def test_a_member_demoted_to_viewer_loses_write_access_through_their_key(anon_client, alice, bob, team):
    key = ApiKeyFactory(team=team, scopes=["read", "write"], created_by=bob)
    payload = {"name": "child", "scopes": ["read"]}
    assert anon_client.post("/api/v1/api-keys", payload, format="json", **bearer(key)).status_code == 201

    services.member_change_role(actor=alice, team=team, user_id=bob.pk, role="viewer")

    refused = anon_client.post("/api/v1/api-keys", payload, format="json", **bearer(key))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_role"
    assert anon_client.get("/api/v1/api-keys", **bearer(key)).status_code == 200  # reading still works


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, raw_key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {raw_key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def second_server(transactional_db):
    """`manage.py runserver` in its own process, on the test database."""
    port = _free_port()
    settings = connection.settings_dict
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}",
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
            return True
        except OSError:
            return False

    try:
        wait_until(answers, timeout=60, interval=0.3, message="the second server answering /healthz")
    except AssertionError:
        proc.kill()
        raise
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_a_removal_counts_at_once_in_another_server_process(second_server, alice, bob, team):
    key = ApiKeyFactory(team=team, scopes=["read"], created_by=bob)
    assert _get(f"{second_server}/api/v1/api-keys", key.raw) == 200

    services.member_remove(actor=alice, team=team, user_id=bob.pk)

    assert _get(f"{second_server}/api/v1/api-keys", key.raw) == 401
