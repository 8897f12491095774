"""Classification truncation policies, mixed-adapter batches and the micro-batcher."""

from __future__ import annotations

import threading

import pytest

from serving.runtime import InputTooLong, ModelCache, ServingRuntime
from serving.runtime.classify import classify_direct, encode, logits_for


def test_refuse_names_the_input_and_its_token_count(artifacts, resolver):
    lm = ModelCache(resolve_base=resolver).get(artifacts["lora_a"])
    long_text = " ".join(["card"] * 300)
    with pytest.raises(InputTooLong) as e:
        classify_direct(lm, ["short one", long_text], truncation="refuse")
    assert e.value.index == 1 and e.value.tokens == 302 and e.value.max_tokens == 128
    assert "input 1 has 302 tokens" in str(e.value) and "128" in str(e.value)


def test_truncate_cuts_to_the_limit_and_says_so(artifacts, resolver):
    lm = ModelCache(resolve_base=resolver).get(artifacts["lora_a"])
    long_text = "my card has not arrived " + " ".join(["card"] * 300)
    short, cut = classify_direct(lm, ["my card has not arrived", long_text], truncation="truncate")
    assert not short.truncated and cut.truncated and cut.tokens == 307
    (enc,) = encode(lm, [long_text])
    assert (
        len(enc.features["input_ids"]) == 128 and enc.features["input_ids"][-1] == lm.tokenizer.sep_token_id
    )


def test_mixed_adapter_batch_equals_each_adapter_alone(artifacts, resolver, valid_rows):
    cache = ModelCache(resolve_base=resolver)
    a, b = cache.get(artifacts["lora_a"]), cache.get(artifacts["lora_b"])
    texts = [r["text"] for r in valid_rows[:12]]
    solo_a = logits_for([(a, e) for e in encode(a, texts)])
    solo_b = logits_for([(b, e) for e in encode(b, texts)])
    # The adapters were trained on different labellings: they must disagree somewhere.
    assert any((x - y).abs().max() > 1e-2 for x, y in zip(solo_a, solo_b, strict=True))
    rows, expect = [], []
    for i, t in enumerate(texts):
        lm, solo = (a, solo_a) if i % 2 else (b, solo_b)
        rows.append((lm, encode(lm, [t])[0]))
        expect.append(solo[i])
    mixed = logits_for(rows)
    for got, want in zip(mixed, expect, strict=True):
        assert (got - want).abs().max() < 1e-5


def test_ia3_adapters_in_one_batch_equal_their_solo_answers(artifacts, resolver, valid_rows, tmp_path):
    import shutil

    other = tmp_path / "ia3_copy"
    shutil.copytree(artifacts["ia3"], other)
    cache = ModelCache(resolve_base=resolver)
    a, b = cache.get(artifacts["ia3"]), cache.get(other)
    assert a.group is b.group and not a.group.supports_mixed_batch
    texts = [r["text"] for r in valid_rows[:6]]
    solo = logits_for([(a, e) for e in encode(a, texts)])
    mixed = logits_for([(a if i % 2 else b, e) for i, e in enumerate(encode(a, texts))])
    for x, y in zip(solo, mixed, strict=True):
        assert (x - y).abs().max() < 1e-5


def test_micro_batcher_merges_concurrent_callers_and_answers_each_correctly(artifacts, resolver, valid_rows):
    rt = ServingRuntime(resolve_base=resolver, max_batch_size=16, max_wait_ms=50)
    solo_rt = ServingRuntime(resolve_base=resolver, micro_batching=False)
    try:
        texts = [r["text"] for r in valid_rows[:8]]
        paths = [artifacts["lora_a"] if i % 2 else artifacts["lora_b"] for i in range(8)]
        expected = [solo_rt.classify(p, [t])[0] for p, t in zip(paths, texts, strict=True)]
        for p in set(paths):
            rt.classify(p, ["warm up"])  # loaded before the burst, so the threads only wait on batching
        results: list = [None] * 8
        start = threading.Barrier(8)

        def client(i: int) -> None:
            start.wait()
            results[i] = rt.classify(paths[i], [texts[i]])[0]

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sizes = [k for k in rt.batcher.batch_sizes if k > 1]
        assert sizes, rt.batcher.batch_sizes
        assert max(sizes) > 1
        for got, want in zip(results, expected, strict=True):
            assert got.label == want.label
            assert got.scores == pytest.approx(want.scores, abs=1e-5)
        m = rt.metrics()
        assert m["cache_hits"] >= 8 and m["batch_mean_batch_size"] > 1
    finally:
        rt.close()
        solo_rt.close()


def test_a_refused_input_fails_only_its_own_call(artifacts, resolver):
    rt = ServingRuntime(resolve_base=resolver)
    try:
        with pytest.raises(InputTooLong):
            rt.classify(artifacts["lora_a"], ["ok", "card " * 400], truncation="refuse")
        assert rt.classify(artifacts["lora_a"], ["ok"])[0].label
    finally:
        rt.close()
