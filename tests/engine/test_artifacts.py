"""Artifacts are plain Hugging Face format and load in a fresh process with only transformers and peft."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.engine import JobSpec, train

HERE = Path(__file__).resolve().parent


def load_in_fresh_process(jobs: list[dict]) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    proc = subprocess.run(
        [sys.executable, str(HERE / "load_artifact.py"), json.dumps(jobs)],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_bert, tiny_gpt2, data_dir, cache_dir):
    root = tmp_path_factory.mktemp("artifacts")

    def run(name: str, **fields):
        hp = {"n_epochs": 3, "batch_size": 16, "learning_rate": 1e-2, **fields.pop("hyperparameters", {})}
        spec = {
            "base_model": tiny_bert,
            "task": "classification",
            "method": "lora",
            "train_file": str(data_dir / "train.jsonl"),
            "validation_file": str(data_dir / "valid.jsonl"),
            "output_dir": str(root / name),
            "cache_dir": cache_dir,
            "hyperparameters": hp,
            "dataset_hash": "sha256:feedface",
            **fields,
        }
        return train(JobSpec.from_dict(spec))

    return {
        "lora": run("lora"),
        "merged": run("merged", hyperparameters={"merge_adapter": True}),
        "full": run("full", method="full", hyperparameters={"learning_rate": 2e-3}),
        "chat": run(
            "chat",
            base_model=tiny_gpt2,
            task="chat_sft",
            train_file=str(data_dir / "chat_train.jsonl"),
            validation_file=str(data_dir / "chat_valid.jsonl"),
            hyperparameters={"batch_size": 4},
        ),
    }


def test_artifacts_reload_in_a_clean_process_with_the_reported_accuracy(
    trained, tiny_bert, tiny_gpt2, data_dir
):
    jobs = [
        {
            "dir": trained[k].output_dir,
            "base": tiny_gpt2 if k == "chat" else tiny_bert,
            "valid": str(data_dir / "valid.jsonl"),
        }
        for k in ("lora", "merged", "full", "chat")
    ]
    jobs.append(
        {
            "dir": str(Path(trained["merged"].output_dir) / "adapter"),
            "base": tiny_bert,
            "valid": str(data_dir / "valid.jsonl"),
        }
    )
    # adapter/ of a merged export has no label_map/engine.json of its own: copy them in for the loader
    for name in ("label_map.json", "engine.json", "tokenizer.json", "tokenizer_config.json"):
        src = Path(trained["merged"].output_dir) / name
        dst = Path(jobs[-1]["dir"]) / name
        content = src.read_text()
        if name == "engine.json":
            content = json.dumps({**json.loads(content), "merged": False})
        dst.write_text(content)
    out = load_in_fresh_process(jobs)
    assert out["finetune_imported"] is False
    lora, merged, full, chat, merged_adapter = out["results"]
    for key, res in (("lora", lora), ("merged", merged), ("full", full)):
        assert res["accuracy"] == pytest.approx(trained[key].metrics["final"]["valid_accuracy"]), key
    # merging LoRA into the base gives the same model as base + adapter
    assert merged["logits_sum"] == pytest.approx(merged_adapter["logits_sum"], rel=1e-4)
    assert chat["generated_tokens"] >= 1


def test_the_output_dir_holds_the_documented_files(trained):
    out = Path(trained["lora"].output_dir)
    names = {p.name for p in out.iterdir()}
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "label_map.json",
        "metrics.json",
        "spec.json",
        "README.md",
    } <= names
    assert not any(n.endswith(".bin") for n in names)
    full = {p.name for p in Path(trained["full"].output_dir).iterdir()}
    assert {"model.safetensors", "config.json"} <= full
    merged = {p.name for p in Path(trained["merged"].output_dir).iterdir()}
    assert {"model.safetensors", "config.json", "adapter"} <= merged and "adapter_config.json" not in merged


def test_the_resolved_spec_reproduces_the_run_settings(trained):
    res = trained["lora"]
    saved = json.loads((Path(res.output_dir) / "spec.json").read_text())
    assert saved == res.resolved_spec
    spec = JobSpec.from_dict(saved)  # a valid spec again, with "auto" decided
    assert spec.hyperparameters.max_length != "auto" and spec.hyperparameters.target_modules == [
        "query",
        "value",
    ]


def test_the_model_card_names_base_model_data_hyperparameters_metrics_and_limits(trained, tiny_bert):
    card = (Path(trained["lora"].output_dir) / "README.md").read_text()
    assert f"base_model: {tiny_bert}" in card
    assert "sha256:feedface" in card
    assert "| learning_rate | 0.01 |" in card
    assert "valid_accuracy" in card and "majority class" in card
    assert "## Intended use" in card and "## Limits" in card
    # "How to load" works without the model hub: local folders only.
    assert 'os.environ["HF_HUB_OFFLINE"] = "1"' in card and "path/to/the/downloaded/folder" in card


def test_metrics_json_has_the_final_baseline_and_history(trained):
    metrics = json.loads((Path(trained["lora"].output_dir) / "metrics.json").read_text())
    # "final" scores the exported weights: those of the best evaluation, which may precede the last step.
    assert metrics["final"]["step"] == metrics["kept"]["step"] <= trained["lora"].steps
    assert metrics["kept"]["last_step"] == trained["lora"].steps
    assert metrics["history"]["eval"][0]["step"] == 0
    assert len(metrics["history"]["train"]) == trained["lora"].steps
    chat = json.loads((Path(trained["chat"].output_dir) / "metrics.json").read_text())
    assert {"valid_loss", "valid_perplexity", "valid_token_accuracy"} <= set(chat["final"])
    assert chat["final"]["valid_loss"] < chat["baseline"]["base_model"]["valid_loss"]


def test_the_adapter_config_names_the_base_model_as_the_user_chose_it(trained, tiny_bert):
    cfg = json.loads((Path(trained["lora"].output_dir) / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == tiny_bert


def test_a_platform_given_base_model_name_replaces_the_local_path_in_every_artifact(
    tmp_path, tiny_bert, data_dir, cache_dir
):
    # A platform trains from a local copy but names the model as its registry does.
    spec = JobSpec.from_dict(
        {
            "base_model": tiny_bert,
            "base_model_name": "acme/tiny-bert",
            "task": "classification",
            "method": "lora",
            "train_file": str(data_dir / "train.jsonl"),
            "validation_file": str(data_dir / "valid.jsonl"),
            "output_dir": str(tmp_path / "out"),
            "cache_dir": cache_dir,
            "max_steps": 2,
            "hyperparameters": {"n_epochs": 1, "batch_size": 16, "learning_rate": 1e-2},
        }
    )
    out = Path(train(spec).output_dir)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "acme/tiny-bert"
    for name in ("README.md", "adapter_config.json", "engine.json"):
        assert tiny_bert not in (out / name).read_text(), name
    # spec.json records the run as it was (it reproduces it on this machine), with the portable name.
    assert json.loads((out / "spec.json").read_text())["base_model_name"] == "acme/tiny-bert"


def test_the_validation_predictions_agree_with_the_confusion_matrix_and_keep_the_texts(trained, data_dir):
    res = trained["full"]
    lines = (Path(res.output_dir) / "validation_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    texts = [json.loads(line)["text"] for line in (data_dir / "valid.jsonl").read_text().splitlines() if line]
    assert [row["text"] for row in rows] == texts and [row["index"] for row in rows] == list(range(len(rows)))
    labels = json.loads((Path(res.output_dir) / "label_map.json").read_text())["labels"]
    final = res.metrics["final"]
    matrix = [[0] * len(labels) for _ in labels]
    for row in rows:
        assert 0 < row["score"] <= 1 and 0 <= row["label_score"] <= row["score"] + 1e-6
        matrix[labels.index(row["label"])][labels.index(row["predicted"])] += 1
    assert matrix == final["valid_confusion_matrix"]  # the same model as the final evaluation
    # Chat runs have no single predicted label: no file.
    assert not (Path(trained["chat"].output_dir) / "validation_predictions.jsonl").exists()
