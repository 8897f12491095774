"""Django's Redis cache backend with one long-lived redis-py client per connection pool.

`django.core.cache.backends.redis.RedisCacheClient.get_client` builds a new `redis.Redis` around
the (cached) pool on every cache call; building one costs about 0.15 ms of CPU (redis-py sets up
its response callbacks each time), paid on every API-key lookup of every request. A `redis.Redis`
is thread-safe and takes its connections from the pool per command, and the pool itself notices a
fork (it checks the process id), so one client per pool is kept and reused. Behaviour is otherwise
Django's own.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class PooledRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None or client.connection_pool is not pool:
            client = self._client(connection_pool=pool)
            self._clients[id(pool)] = client
        return client


class PooledRedisCache(RedisCache):
    """settings.CACHES backend: `common.cache.PooledRedisCache`.

    `stored_key`, `stored_value`, `loaded_value` and `stored_values` give the names and bytes this
    cache writes in Redis, so a Lua script of another part (the quota check) can read or compare a
    cached value in its own round trip (`accounts.authentication.PendingAccess`)."""

    def stored_key(self, key: str) -> str:
        return self.make_and_validate_key(key)

    def stored_value(self, value: Any) -> Any:
        return self._cache._serializer.dumps(value)

    def loaded_value(self, raw: bytes | None) -> Any:
        return None if raw is None else self._cache._serializer.loads(raw)

    def stored_values(self, stored_keys: list[str]) -> list[bytes | None]:
        """The bytes under these `stored_key`s, in one MGET."""
        return self._cache.get_client().mget(stored_keys)

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = PooledRedisCacheClient
