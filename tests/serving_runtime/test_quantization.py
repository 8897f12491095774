"""Dynamic int8 quantization: served on CPU, and its measured accuracy change on a validation set."""

from __future__ import annotations

import torch

from serving.runtime import ModelCache, measure_int8_change
from serving.runtime.classify import classify_direct


def test_int8_model_is_quantized_and_close_to_fp32(artifacts, resolver, valid_rows):
    cache = ModelCache(resolve_base=resolver)
    q = cache.get(artifacts["full"], quantize=True)
    f = cache.get(artifacts["full"])
    assert q.quantized and any(
        isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in q.module.modules()
    )
    assert q.nbytes < f.nbytes
    texts = [r["text"] for r in valid_rows[:20]]
    agree = sum(
        a.label == b.label for a, b in zip(classify_direct(q, texts), classify_direct(f, texts), strict=True)
    )
    assert agree >= 15


def test_measured_accuracy_change_matches_both_models_accuracies(artifacts, resolver, valid_rows):
    texts = [r["text"] for r in valid_rows]
    labels = [r["label"] for r in valid_rows]
    report = measure_int8_change(path=artifacts["lora_a"], resolve_base=resolver, texts=texts, labels=labels)
    fp32 = classify_direct(ModelCache(resolve_base=resolver).get(artifacts["lora_a"]), texts)
    expected = sum(c.label == g for c, g in zip(fp32, labels, strict=True)) / len(labels)
    assert abs(report.fp32_accuracy - expected) < 1e-9
    assert report.accuracy_change == report.int8_accuracy - report.fp32_accuracy
    assert report.n == len(texts) and 0 <= report.agreement <= 1
    assert report.int8_mb < report.fp32_mb
