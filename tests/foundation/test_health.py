from django.test import override_settings


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_database_redis_and_broker_answer(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}


def test_readyz_names_redis_when_it_is_unreachable(client, db):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"] == "redis unreachable (REDIS_URL)"
    assert body["checks"]["database"] == "ok"


def test_readyz_does_not_echo_the_driver_error_with_host_and_port(client, db):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0", CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
        response = client.get("/readyz")
    assert response.status_code == 503
    text = response.content.decode()
    assert "127.0.0.1" not in text and ":1" not in text and "Error" not in text


def test_readyz_names_the_broker_when_it_is_unreachable(client, db):
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "broker unreachable (CELERY_BROKER_URL)"


def test_readyz_names_the_database_when_it_is_unreachable():
    # A database that is down cannot be simulated inside the test database's own connection, so a
    # separate process points at a closed port.
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/readyz'); print(r.status_code); print(json.dumps(r.json()))"
    )
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "PYTHONPATH": f"{root}:{root / 'platform'}",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    status, body = out.stdout.strip().splitlines()[-2:]
    assert status == "503"
    assert '"database": "database unreachable"' in body and '"redis": "ok"' in body
    assert "127.0.0.1" not in body and "nowhere" not in body
