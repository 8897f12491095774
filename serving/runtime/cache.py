"""Per-process model cache: bounded in MB, least recently used out first, one shared base per group of adapters."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import loading
from .artifact import read_artifact
from .errors import InvalidRequest
from .loading import BaseGroup, BaseResolver, LoadedModel
from .observer import RuntimeObserver, notify

log = logging.getLogger(__name__)

MODES = ("auto", "adapter", "merged")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    resident_bytes: int = 0
    models: int = 0
    bases: int = 0


def adapter_name_for(path: str) -> str:
    # peft keys modules by adapter name, so it must be a plain identifier; the path's hash is stable per version.
    return "v" + hashlib.sha1(path.encode()).hexdigest()[:16]


class ModelCache:
    """Thread-safe LRU of loaded model versions.

    Sizes are estimated from parameter and buffer bytes. A shared base is charged once, while any adapter
    on it is resident, and released with its last adapter. Models in use (pinned) are never evicted, so
    the cache can exceed its bound while more pinned models than fit are serving requests.
    """

    def __init__(
        self, *, resolve_base: BaseResolver, max_mb: float = 4096, observer: RuntimeObserver | None = None
    ) -> None:
        self.resolve_base = resolve_base
        self.observer = observer or RuntimeObserver()
        self.max_bytes = int(max_mb * 1024 * 1024)
        self._lock = threading.RLock()
        self._models: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._groups: dict[tuple, BaseGroup] = {}
        self._tokenizers: dict[str, tuple[object, threading.Lock, int]] = {}
        self.hits = self.misses = self.evictions = 0

    # ------------------------------------------------------------------ public
    def get(self, path: str | Path, *, mode: str = "auto", quantize: bool = False) -> LoadedModel:
        """The loaded model version (loading it on a miss). Not pinned: use `checkout` while serving."""
        with self.checkout(path, mode=mode, quantize=quantize) as lm:
            return lm

    @contextmanager
    def checkout(
        self, path: str | Path, *, mode: str = "auto", quantize: bool = False
    ) -> Iterator[LoadedModel]:
        lm = self.acquire(path, mode=mode, quantize=quantize)
        try:
            yield lm
        finally:
            self.release(lm)

    def acquire(self, path: str | Path, *, mode: str = "auto", quantize: bool = False) -> LoadedModel:
        """Pin and return; pair with release()."""
        if mode not in MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        key = (str(Path(path).resolve()), mode, bool(quantize))
        with self._lock:
            lm = self._models.get(key)
            if lm is not None:
                self.hits += 1
                self._models.move_to_end(key)
                notify(self.observer, "on_cache", event="hit")
            else:
                self.misses += 1
                notify(self.observer, "on_cache", event="miss")
                lm = self._load(key)
                self._models[key] = lm
            lm.pins += 1
            self._evict_over_budget(keep=key)
            return lm

    def release(self, lm: LoadedModel) -> None:
        with self._lock:
            lm.pins -= 1
            self._evict_over_budget(keep=None)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self.hits,
                misses=self.misses,
                evictions=self.evictions,
                resident_bytes=self._resident(),
                models=len(self._models),
                bases=len(self._groups),
            )

    def resident_keys(self) -> list[tuple]:
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            for key in list(self._models):
                self._evict(key)

    # ------------------------------------------------------------------ internals
    def _resident(self) -> int:
        return sum(g.base_bytes for g in self._groups.values()) + sum(m.nbytes for m in self._models.values())

    def _load(self, key: tuple) -> LoadedModel:
        path, mode, quantize = key
        info = read_artifact(path)
        fp = loading.tokenizer_fingerprint(path)
        shared_tok = self._tokenizers.get(fp)
        tok = shared_tok[0] if shared_tok else loading.load_tokenizer(path, info)
        lm = self._load_model(key, info, tok)
        if shared_tok:
            self._tokenizers[fp] = (tok, shared_tok[1], shared_tok[2] + 1)
            lm.tokenizer_lock = shared_tok[1]
        else:
            self._tokenizers[fp] = (tok, lm.tokenizer_lock, 1)
        lm.tokenizer_key = fp
        return lm

    def _load_model(self, key: tuple, info, tok) -> LoadedModel:
        path, mode, quantize = key
        shared = info.format == "adapter" and not info.merged
        if mode == "adapter":
            if info.adapter_dir is None:
                raise InvalidRequest(f"{path} has no adapter to serve over a shared base (mode='adapter')")
            shared = True
        elif mode == "merged":
            shared = False
        if quantize:
            shared = False  # int8 layers cannot host peft adapters; serve a merged private copy
        if shared:
            return self._load_shared(key, info, tok)
        merge = info.format == "adapter" and not info.merged
        module = loading.load_standalone(info, self.resolve_base, merge_adapter=merge)
        max_len = loading.max_length_of(module, tok)
        if quantize:
            nbytes = loading.int8_bytes(module)
            module = loading.quantize_int8(module, inplace=True)
        else:
            nbytes = loading.module_bytes(module)
        log.info("serving: loaded %s (%s, %.1f MB)", path, "int8" if quantize else "fp32", nbytes / 2**20)
        return LoadedModel(
            key=key,
            info=info,
            tokenizer=tok,
            max_length=max_len,
            nbytes=nbytes,
            module=module,
            quantized=quantize,
        )

    def _load_shared(self, key: tuple, info, tok) -> LoadedModel:
        base_path = loading.resolve(self.resolve_base, info)
        gkey = loading.group_key(base_path, info)
        name = adapter_name_for(f"{key[0]}|{key[1]}")
        group = self._groups.get(gkey)
        if group is None:
            group = loading.new_group(base_path, info, name)
            self._groups[gkey] = group
            log.info("serving: loaded base %s (%.1f MB)", base_path, group.base_bytes / 2**20)
        else:
            loading.attach_adapter(group, info, name)
        nbytes = loading.adapter_bytes(group, name, info.adapter_dir)
        log.info("serving: attached adapter %s as %s (%.2f MB)", key[0], name, nbytes / 2**20)
        return LoadedModel(
            key=key,
            info=info,
            tokenizer=tok,
            max_length=loading.max_length_of(group.base_module, tok),
            nbytes=nbytes,
            module=group.peft_model,
            adapter_name=name,
            group=group,
        )

    def _evict_over_budget(self, *, keep: tuple | None) -> None:
        while self._resident() > self.max_bytes:
            victim = next((k for k, m in self._models.items() if m.pins == 0 and k != keep), None)
            if victim is None:
                return
            self._evict(victim)

    def _evict(self, key: tuple) -> None:
        lm = self._models.pop(key)
        lm.evicted = True
        tok, tlock, refs = self._tokenizers[lm.tokenizer_key]
        if refs <= 1:
            del self._tokenizers[lm.tokenizer_key]
        else:
            self._tokenizers[lm.tokenizer_key] = (tok, tlock, refs - 1)
        self.evictions += 1
        notify(self.observer, "on_cache", event="eviction")
        group = lm.group
        if group is not None:
            if len(group.adapters) <= 1:
                # peft cannot hold zero adapters; the base goes with its last one.
                del self._groups[group.key]
                group.adapters.clear()
                log.info("serving: evicted %s and its base %s", key[0], group.key[0])
            else:
                loading.detach_adapter(group, lm.adapter_name)
                log.info("serving: evicted adapter %s (%s)", key[0], lm.adapter_name)
        else:
            log.info("serving: evicted %s (%.1f MB)", key[0], lm.nbytes / 2**20)
