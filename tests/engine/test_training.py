"""The training loop on tiny local models: what the reporter sees, what lands on disk, determinism."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finetune.engine import NullReporter, Progress, RecordingReporter, train
from finetune.engine.vocabulary import Method, Task


def weights(out: str, name: str = "adapter_model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(Path(out) / name))


def test_a_classification_run_reports_steps_evals_progress_checkpoints_and_logs(make_spec):
    rep = RecordingReporter()
    res = train(
        make_spec(hyperparameters={"n_epochs": 3, "learning_rate": 1e-2, "group_by_length": False}), rep
    )

    assert res.status == "succeeded" and res.steps == 3 * 15 == len(rep.steps)
    assert [s["step"] for s in rep.steps] == list(range(1, 46))
    assert {"step", "epoch", "train_loss", "learning_rate", "grad_norm"} <= set(rep.steps[0])
    # the model learns: late training loss clearly below the untrained ~ln(4)
    assert sum(s["train_loss"] for s in rep.steps[-5:]) / 5 < 1.3 < math.log(4)
    # evaluation before training (baseline), then ~5 times: under 5 epochs "auto" evaluates by steps
    assert [e["step"] for e in rep.evals] == [0, 9, 18, 27, 36, 45]
    final = rep.evals[-1]
    for key in (
        "valid_loss",
        "valid_accuracy",
        "valid_f1_macro",
        "valid_f1_micro",
        "valid_per_class",
        "valid_confusion_matrix",
    ):
        assert key in final
    assert final["valid_accuracy"] > rep.evals[0]["valid_accuracy"]
    assert sum(map(sum, final["valid_confusion_matrix"])) == 80
    assert set(final["valid_per_class"]) == {
        "Refund_not_showing_up",
        "card_arrival",
        "exchange_rate",
        "lost_or_stolen_card",
    }
    # progress: percent climbs to 100, with throughput figures
    assert all(isinstance(p, Progress) for p in rep.progress)
    assert rep.progress[-1].percent == 100.0 and rep.progress[-1].eta_seconds == 0.0
    assert rep.progress[0].samples_per_second > 0 and rep.progress[0].tokens_per_second > 0
    assert 0 < rep.progress[0].percent < rep.progress[10].percent
    # a checkpoint after each epoch but the last (the final artifacts follow it)
    assert [c["step"] for c in rep.checkpoints] == [15, 30]
    assert any("model ready" in m for _, m in rep.logs)
    # each line a user reads on a normal run is named, so the job page can show it translated
    # (a warm tokenization cache from an earlier test says so: the same line, its "from cache" variant)
    codes = [code.removesuffix("_from_cache") for code, _ in rep.log_codes]
    assert codes == [
        "tokenized",
        "tokenized",
        "plan",
        "model_ready",
        "baseline",
        "exported_weights",
        "artifacts_written",
    ], codes
    # baselines in metrics.json, so users see the gain
    metrics = json.loads((Path(res.output_dir) / "metrics.json").read_text())
    assert metrics["baseline"]["majority_class"]["accuracy"] == 0.25
    assert metrics["baseline"]["base_model"]["valid_loss"] == pytest.approx(math.log(4), abs=0.05)
    # the gain is the exported (best) evaluation's
    assert metrics["gain_over_base_model"]["valid_accuracy"] == pytest.approx(
        metrics["final"]["valid_accuracy"] - rep.evals[0]["valid_accuracy"]
    )
    assert res.trained_tokens == metrics["train"]["trained_tokens"] > 3 * 240


def test_cpu_runs_are_deterministic_for_a_seed(make_spec):
    a = train(make_spec(out="a", hyperparameters={"lora_dropout": 0.1}))
    b = train(make_spec(out="b", hyperparameters={"lora_dropout": 0.1}))
    c = train(make_spec(out="c", seed=7, hyperparameters={"lora_dropout": 0.1}))
    wa, wb, wc = weights(a.output_dir), weights(b.output_dir), weights(c.output_dir)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.metrics["history"] == b.metrics["history"]
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


def test_checkpoints_every_n_steps_keep_only_the_last_k(make_spec):
    rep = RecordingReporter()
    res = train(make_spec(hyperparameters={"save_every_steps": 4, "keep_last_checkpoints": 2}), rep)
    saved = [c["step"] for c in rep.checkpoints]
    assert saved == [4, 8, 12, 15, 16, 20, 24, 28]  # every 4 steps plus the end of epoch 1 (step 15)
    on_disk = sorted(p.name for p in (Path(res.output_dir) / "checkpoints").iterdir())
    assert on_disk == ["step-24", "step-28"]
    ckpt = Path(rep.checkpoints[-1]["path"])
    assert {"trainable.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json"} <= {
        p.name for p in ckpt.iterdir()
    }
    assert rep.checkpoints[-1]["metrics"]["step"] == 28


def test_evaluation_every_n_steps(make_spec):
    rep = RecordingReporter()
    train(make_spec(hyperparameters={"eval_every_steps": 10}), rep)
    assert [e["step"] for e in rep.evals] == [0, 10, 20, 30]  # 30 = the final step


def test_early_stopping_stops_when_the_metric_stops_improving(make_spec):
    rep = RecordingReporter()
    # A learning rate this small cannot change the predictions, so accuracy never beats the baseline.
    res = train(
        make_spec(
            hyperparameters={
                "learning_rate": 1e-9,
                "eval_every_steps": 3,
                "early_stopping_patience": 2,
                "early_stopping_metric": "eval_accuracy",
                "early_stopping_start_step": 0,  # every evaluation counts, not only the last third's
            }
        ),
        rep,
    )
    assert res.status == "succeeded" and res.steps == 6
    assert res.metrics["train"]["stopped_early"] is True
    assert any("early stopping" in m for _, m in rep.logs)
    assert (Path(res.output_dir) / "adapter_model.safetensors").is_file()


def test_gradient_accumulation_and_max_steps_set_the_number_of_optimizer_steps(make_spec):
    rep = RecordingReporter()
    res = train(make_spec(hyperparameters={"batch_size": 8, "gradient_accumulation_steps": 4}), rep)
    assert res.steps == 2 * math.ceil(30 / 4) and res.metrics["train"]["trained_samples"] == 480
    res = train(make_spec(out="short", max_steps=5, validation_file=None))
    assert res.steps == 5 and res.metrics["train"]["trained_samples"] == 5 * 16


def test_cancel_stops_within_one_step_without_artifacts(make_spec):
    class CancelAfter3(RecordingReporter):
        def control(self) -> str:
            return "cancel" if len(self.steps) >= 3 else "continue"

    rep = CancelAfter3()
    res = train(make_spec(), rep)
    assert res.status == "cancelled" and res.steps == 3 and len(rep.steps) == 3
    assert not (Path(res.output_dir) / "metrics.json").exists()


def test_multilabel_classification_reports_micro_and_macro_f1_and_per_label_matrices(make_spec, data_dir):
    rep = RecordingReporter()
    res = train(
        make_spec(
            task=Task.MULTILABEL_CLASSIFICATION,
            train_file=str(data_dir / "multi_train.jsonl"),
            validation_file=str(data_dir / "multi_valid.jsonl"),
            hyperparameters={
                "n_epochs": 3,
                "learning_rate": 2e-2,
                "class_weights": True,
                "label_smoothing": 0.05,
            },
        ),
        rep,
    )
    final = res.metrics["final"]
    assert {"valid_f1_micro", "valid_f1_macro", "valid_accuracy", "valid_hamming_accuracy"} <= set(final)
    assert "mentions_card" in final["valid_per_class"]
    # [[tn, fp], [fn, tp]] per label: every validation row is counted once, and the row with
    # the label set are exactly the positives (fn + tp).
    valid_rows = [
        json.loads(line) for line in (data_dir / "multi_valid.jsonl").read_text().splitlines() if line
    ]
    (tn, fp), (fn, tp) = final["valid_confusion_matrix"]["mentions_card"]
    assert tn + fp + fn + tp == len(valid_rows)
    assert fn + tp == sum("mentions_card" in row["labels"] for row in valid_rows)
    assert final["valid_loss"] < rep.evals[0]["valid_loss"]
    label_map = json.loads((Path(res.output_dir) / "label_map.json").read_text())
    assert label_map["problem_type"] == "multi_label_classification" and len(label_map["labels"]) == 5


def test_class_weights_count_rare_classes_more():
    from finetune.engine.trainer import balanced_class_weights

    class FakePlan:
        labels = ["a", "b"]

        class spec:  # noqa: N801
            task = Task.CLASSIFICATION

        class train:  # noqa: N801
            targets = [0, 0, 0, 1]

            def __len__(self) -> int:
                return 4

    FakePlan.train = FakePlan.train()  # type: ignore[assignment]
    w = balanced_class_weights(FakePlan)  # type: ignore[arg-type]
    assert w.tolist() == pytest.approx([4 / 6, 2.0])  # n / (k * n_c)


@pytest.mark.parametrize("method", [Method.FULL, Method.LORA, Method.IA3, Method.PROMPT_TUNING])
def test_chat_sft_trains_every_method_and_reports_perplexity_and_token_accuracy(
    method, make_spec, tiny_gpt2, data_dir
):
    rep = RecordingReporter()
    lr = {Method.FULL: 3e-3, Method.LORA: 1e-2, Method.IA3: 5e-2, Method.PROMPT_TUNING: 1e-1}[method]
    res = train(
        make_spec(
            base_model=tiny_gpt2,
            task=Task.CHAT_SFT,
            method=method,
            train_file=str(data_dir / "chat_train.jsonl"),
            validation_file=str(data_dir / "chat_valid.jsonl"),
            hyperparameters={"n_epochs": 4, "batch_size": 4, "learning_rate": lr},
        ),
        rep,
    )
    base, final = rep.evals[0], rep.evals[-1]
    assert {"valid_loss", "valid_perplexity", "valid_token_accuracy"} <= set(final)
    assert final["valid_perplexity"] == pytest.approx(math.exp(final["valid_loss"]), rel=1e-4)
    assert final["valid_loss"] < base["valid_loss"]  # learns something over the base model's loss
    assert res.metrics["baseline"]["base_model"]["valid_loss"] == base["valid_loss"]
    assert "majority_class" not in res.metrics["baseline"]


def test_classification_with_a_decoder_model(make_spec, tiny_gpt2):
    res = train(make_spec(base_model=tiny_gpt2, hyperparameters={"n_epochs": 2, "learning_rate": 2e-2}))
    assert (
        res.status == "succeeded"
        and res.metrics["final"]["valid_loss"] < res.metrics["baseline"]["base_model"]["valid_loss"]
    )


def test_gradient_checkpointing_recomputes_activations_and_trains_the_same_model(make_spec, monkeypatch):
    import transformers.modeling_utils as ckpt

    calls = []
    real = ckpt.checkpoint

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    plain = train(make_spec(out="plain", max_steps=4, validation_file=None))
    monkeypatch.setattr(ckpt, "checkpoint", counting)
    checkpointed = train(
        make_spec(
            out="gc", max_steps=4, validation_file=None, hyperparameters={"gradient_checkpointing": True}
        )
    )
    assert len(calls) >= 4 * 2  # every layer of every step
    a, b = weights(plain.output_dir), weights(checkpointed.output_dir)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_null_reporter_never_stops_a_run():
    r = NullReporter()
    assert r.control() == "continue"
    r.on_log("info", "x")
    r.on_checkpoint(step=1, path="/x", metrics={})


def test_lora_target_modules_can_be_overridden_and_land_in_the_adapter(make_spec):
    res = train(
        make_spec(max_steps=2, validation_file=None, hyperparameters={"target_modules": ["key", "dense"]})
    )
    config = json.loads((Path(res.output_dir) / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == ["dense", "key"]
    trained = set(weights(res.output_dir))
    assert any(".key.lora_A" in k for k in trained) and not any(".query.lora_A" in k for k in trained)


def test_warmup_ramps_the_learning_rate_up_then_it_decays_to_zero(make_spec):
    rep = RecordingReporter()
    train(make_spec(max_steps=10, validation_file=None, hyperparameters={"warmup_ratio": 0.3}), rep)
    lrs = [s["learning_rate"] for s in rep.steps]
    peak = max(lrs)
    assert lrs.index(peak) in (2, 3) and lrs[0] < peak / 2  # 3 warmup steps of 10
    assert lrs[-1] < lrs[-2] < peak and peak == pytest.approx(5e-3, rel=0.35)


def test_label_smoothing_changes_the_training_loss_of_the_same_run(make_spec):
    plain, smoothed = RecordingReporter(), RecordingReporter()
    train(make_spec(out="plain", max_steps=3, validation_file=None), plain)
    train(
        make_spec(out="smooth", max_steps=3, validation_file=None, hyperparameters={"label_smoothing": 0.3}),
        smoothed,
    )
    # Same seed, same first batch: only the target distribution differs.
    assert smoothed.steps[0]["train_loss"] != pytest.approx(plain.steps[0]["train_loss"], abs=1e-6)
