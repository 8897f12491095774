"""Django cache calls through Django's Redis backend vs `common.cache.PooledRedisCache`, interleaved.

CPU time (process_time) per `get_many` of two keys, the call API-key authentication makes on every
request. Run: DJANGO_SETTINGS_MODULE=config.settings.test REDIS_URL=... .venv/bin/python bench/bench_cache_client.py
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "platform"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.cache.backends.redis import RedisCache  # noqa: E402

from common.cache import PooledRedisCache  # noqa: E402


def per_call_us(cache, n: int) -> float:
    t = time.process_time()
    for _ in range(n):
        cache.get_many(["bench:a", "bench:b"])
    return (time.process_time() - t) / n * 1e6


def main() -> None:
    url = settings.REDIS_URL
    old, new = RedisCache(url, {}), PooledRedisCache(url, {})
    old.get("warm"), new.get("warm")
    rounds, n = 5, 500
    olds, news = [], []
    for _ in range(rounds):
        olds.append(per_call_us(old, n))
        news.append(per_call_us(new, n))
    o, w = sorted(olds)[rounds // 2], sorted(news)[rounds // 2]
    print(f"django RedisCache get_many: {o:.0f} us CPU/call (median of {rounds}x{n})")
    print(f"PooledRedisCache  get_many: {w:.0f} us CPU/call; saved {o - w:.0f} us, ratio {w / o:.2f}")


if __name__ == "__main__":
    main()
