from django.core.cache import caches

from common.cache import PooledRedisCache


def test_cache_backend_reuses_one_client_and_round_trips_values():
    cache = caches["default"]
    assert isinstance(cache, PooledRedisCache)
    cache.set("test:pooled:a", {"x": 1}, timeout=30)
    cache.set("test:pooled:b", 2, timeout=30)
    assert cache.get_many(["test:pooled:a", "test:pooled:b", "test:pooled:none"]) == {
        "test:pooled:a": {"x": 1},
        "test:pooled:b": 2,
    }
    assert cache._cache.get_client() is cache._cache.get_client(write=True)
    assert cache.incr("test:pooled:b") == 3
    cache.delete_many(["test:pooled:a", "test:pooled:b"])
    assert cache.get("test:pooled:a") is None
