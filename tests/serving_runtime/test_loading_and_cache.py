"""Loading every kind of model version, and the bounded LRU cache with one base shared by its adapters."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from serving.runtime import ArtifactError, ModelCache, ServingRuntime, read_artifact
from serving.runtime.classify import classify_direct


def test_each_kind_loads_and_classifies_the_validation_set_better_than_chance(
    artifacts, resolver, valid_rows
):
    cache = ModelCache(resolve_base=resolver, max_mb=1000)
    texts = [r["text"] for r in valid_rows]
    gold = [r["label"] for r in valid_rows]
    for kind in ("lora_a", "ia3", "merged", "full"):
        lm = cache.get(artifacts[kind])
        out = classify_direct(lm, texts)
        acc = sum(c.label == g for c, g in zip(out, gold, strict=True)) / len(gold)
        reported = json.loads((Path(artifacts[kind]) / "metrics.json").read_text())["final"]
        assert acc == pytest.approx(reported["valid_accuracy"], abs=1e-9), kind
        assert abs(sum(out[0].scores.values()) - 1) < 1e-5
        assert out[0].score == max(out[0].scores.values())
    assert cache.get(artifacts["lora_a"]).group is not None
    assert cache.get(artifacts["merged"]).group is None  # a merged export serves its own weights


def test_merged_export_served_as_adapter_or_merged_answers_the_same(artifacts, resolver, valid_rows):
    cache = ModelCache(resolve_base=resolver, max_mb=1000)
    texts = [r["text"] for r in valid_rows[:16]]
    shared = classify_direct(cache.get(artifacts["merged"], mode="adapter"), texts)
    merged = classify_direct(cache.get(artifacts["merged"]), texts)
    lora_merged = classify_direct(cache.get(artifacts["lora_a"], mode="merged"), texts)
    lora_shared = classify_direct(cache.get(artifacts["lora_a"]), texts)
    for a, b in zip(shared, merged, strict=True):
        assert a.label == b.label
        assert all(abs(a.scores[k] - b.scores[k]) < 1e-4 for k in a.scores)
    for a, b in zip(lora_merged, lora_shared, strict=True):
        assert all(abs(a.scores[k] - b.scores[k]) < 1e-4 for k in a.scores)


def test_multilabel_returns_every_label_over_its_threshold(artifacts, resolver, valid_rows):
    lm = ModelCache(resolve_base=resolver).get(artifacts["multi"])
    assert lm.info.task == "multilabel_classification" and "mentions_card" in lm.info.labels
    out = classify_direct(lm, [r["text"] for r in valid_rows])
    for c in out:
        assert c.labels == [k for k, p in c.scores.items() if p >= 0.5]
        assert not abs(sum(c.scores.values()) - 1) < 1e-3 or len(c.labels) <= 1  # sigmoids, not a softmax
    card = [c for c, r in zip(out, valid_rows, strict=True) if "card" in r["text"].lower()]
    assert sum("mentions_card" in c.labels for c in card) > len(card) / 2


def test_two_adapters_share_one_base_module(artifacts, resolver):
    cache = ModelCache(resolve_base=resolver)
    a, b = cache.get(artifacts["lora_a"]), cache.get(artifacts["lora_b"])
    assert a.adapter_name != b.adapter_name
    assert a.group is b.group
    assert id(a.group.base_module) == id(b.group.base_module)
    assert cache.stats().bases == 1 and cache.stats().models == 2
    # Base charged once, each adapter adds only its own LoRA and head weights.
    assert cache.stats().resident_bytes == a.group.base_bytes + a.nbytes + b.nbytes
    assert 0 < a.nbytes < a.group.base_bytes / 5


def test_an_adapter_attached_next_to_others_answers_as_when_served_alone(artifacts, resolver, valid_rows):
    texts = [r["text"] for r in valid_rows[:12]]
    alone = classify_direct(ModelCache(resolve_base=resolver).get(artifacts["lora_b"]), texts)
    shared = ModelCache(resolve_base=resolver)
    shared.get(artifacts["lora_a"])
    beside = shared.get(artifacts["lora_b"])  # attached to lora_a's base
    for _ in range(2):  # and again once lora_a answered in between
        for a, b in zip(alone, classify_direct(beside, texts), strict=True):
            assert a.label == b.label and all(abs(a.scores[k] - b.scores[k]) < 1e-5 for k in a.scores)
        classify_direct(shared.get(artifacts["lora_a"]), texts)


def test_lru_bound_evicts_least_recently_used_and_counts_it(artifacts, resolver, caplog):
    probe = ModelCache(resolve_base=resolver)
    full_mb = probe.get(artifacts["full"]).nbytes / 2**20
    # Room for about two full models: the third load must evict the least recently used one.
    cache = ModelCache(resolve_base=resolver, max_mb=full_mb * 2.5)
    cache.get(artifacts["full"])
    cache.get(artifacts["merged"])
    cache.get(artifacts["full"])  # touch: merged is now the oldest
    with caplog.at_level(logging.INFO, logger="serving.runtime.cache"):
        cache.get(artifacts["lora_a"], mode="merged")
    keys = [k[0] for k in cache.resident_keys()]
    assert read_artifact(artifacts["merged"]).path not in keys
    assert read_artifact(artifacts["full"]).path in keys
    s = cache.stats()
    assert (s.hits, s.misses, s.evictions) == (1, 3, 1)
    assert s.resident_bytes <= cache.max_bytes
    assert any("evicted" in r.getMessage() and "merged" in r.getMessage() for r in caplog.records)


def test_evicting_the_last_adapter_releases_the_base_and_reload_still_answers(artifacts, resolver):
    cache = ModelCache(resolve_base=resolver)
    before = classify_direct(cache.get(artifacts["lora_a"]), ["my card has not arrived"])[0]
    cache.get(artifacts["lora_b"])
    cache.clear()
    assert cache.stats().bases == 0 and cache.stats().resident_bytes == 0
    again = classify_direct(cache.get(artifacts["lora_a"]), ["my card has not arrived"])[0]
    assert again.scores == pytest.approx(before.scores, abs=1e-6)


def test_unservable_folders_are_refused_with_the_reason(tmp_path, resolver, artifacts):
    with pytest.raises(ArtifactError, match="neither engine.json nor config.json"):
        read_artifact(tmp_path)
    rt = ServingRuntime(resolve_base=lambda name: (_ for _ in ()).throw(LookupError("not registered")))
    try:
        with pytest.raises(ArtifactError, match="cannot be resolved: not registered"):
            rt.classify(artifacts["lora_a"], ["hi"])
    finally:
        rt.close()


def test_a_plain_hugging_face_folder_serves_as_a_chat_model(tiny_gpt2, resolver):
    info = read_artifact(tiny_gpt2)
    assert info.task == "chat" and info.format == "full"
    lm = ModelCache(resolve_base=resolver).get(tiny_gpt2)
    assert lm.chat_template  # the tokenizer has none: the default template applies


def test_adapters_with_identical_tokenizer_files_share_one_tokenizer(artifacts, resolver):
    cache = ModelCache(resolve_base=resolver)
    a, b = cache.get(artifacts["lora_a"]), cache.get(artifacts["lora_b"])
    assert a.tokenizer is b.tokenizer and a.tokenizer_lock is b.tokenizer_lock
    chat = cache.get(artifacts["chat"])
    assert chat.tokenizer is not a.tokenizer
