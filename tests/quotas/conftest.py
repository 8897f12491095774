import os
import uuid

import pytest
import redis


@pytest.fixture
def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def rclient(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix(rclient):
    """A key prefix of this test alone; its keys are deleted afterwards."""
    value = f"test-{uuid.uuid4().hex[:10]}"
    yield value
    keys = list(rclient.scan_iter(match=f"{value}:*"))
    if keys:
        rclient.delete(*keys)
