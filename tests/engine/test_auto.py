"""What "auto" decides (rules on synthetic sizes) and that the best evaluation's weights are exported."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from finetune.engine import RecordingReporter, autoconf, train, validate_spec
from finetune.engine.vocabulary import Method, Task
from tests.engine import tiny_models


def _steps(n_train: int, n_labels: int, batch: int = 32) -> int:
    epochs = autoconf.auto_epochs(n_train, Task.CLASSIFICATION, n_labels=n_labels, batch_size=batch)
    return epochs * math.ceil(n_train / batch)


def test_many_classes_train_for_more_steps_than_few_on_the_same_rows():
    assert _steps(10_000, 77) > _steps(10_000, 3)
    # Banking77 (10k rows, 77 intents): 10 epochs, four more than the reference loop's 6, paid for by
    # length-grouped batches; the 9.5k 3-class financial tweets: 7.
    assert autoconf.auto_epochs(10_003, Task.CLASSIFICATION, n_labels=77, batch_size=32) == 10
    assert autoconf.auto_epochs(9_543, Task.CLASSIFICATION, n_labels=3, batch_size=32) == 7


def test_tiny_data_gets_more_epochs_and_at_least_the_step_floor():
    tiny = autoconf.auto_epochs(120, Task.CLASSIFICATION, n_labels=4, batch_size=8)
    assert tiny > autoconf.auto_epochs(20_000, Task.CLASSIFICATION, n_labels=4, batch_size=32) > 1
    assert tiny * math.ceil(120 / 8) >= autoconf.MIN_OPTIMIZER_STEPS
    assert autoconf.auto_epochs(30, Task.CLASSIFICATION, n_labels=2, batch_size=2) == autoconf.MAX_EPOCHS
    assert autoconf.auto_epochs(500_000, Task.CLASSIFICATION, n_labels=10, batch_size=32) == 1


def test_method_learning_rate_and_lora_rank_follow_the_model_size():
    assert autoconf.auto_method(Task.CLASSIFICATION, 22_000_000) == Method.FULL
    assert autoconf.auto_method(Task.CLASSIFICATION, 1_500_000_000) == Method.LORA
    assert autoconf.auto_method(Task.CLASSIFICATION, 22_000_000, init_method=Method.LORA) == Method.LORA
    assert autoconf.auto_learning_rate(Method.FULL, Task.CLASSIFICATION, 22_000_000) == 1e-4
    assert autoconf.auto_learning_rate(Method.FULL, Task.CLASSIFICATION, 300_000_000) == 5e-5
    assert autoconf.auto_learning_rate(Method.LORA, Task.CLASSIFICATION, 300_000_000) > 1e-4
    assert autoconf.auto_lora_rank(True) == 16 and autoconf.auto_lora_rank(False) == 8


def test_evaluation_cadence_gives_about_five_evaluations():
    assert autoconf.auto_eval_every_steps(6, 1_900) is None  # each epoch: 6 evaluations
    every = autoconf.auto_eval_every_steps(2, 400)
    assert every is not None and 400 / every >= autoconf.TARGET_EVALUATIONS
    assert autoconf.auto_early_stopping_metric(Task.CLASSIFICATION) == "eval_accuracy"
    assert autoconf.auto_early_stopping_metric(Task.CHAT_SFT) == "eval_loss"


def test_max_length_is_the_99th_percentile_rounded_and_capped():
    lengths = list(range(1, 101))
    assert autoconf.auto_max_length(lengths, Task.CLASSIFICATION, None) == 104
    assert autoconf.auto_max_length([5000] * 10, Task.CLASSIFICATION, None) == 512
    assert autoconf.auto_max_length([5000] * 10, Task.CLASSIFICATION, 128) == 128


def test_the_resolved_plan_shows_every_auto_choice_before_training(make_spec):
    plan = validate_spec(make_spec(method="auto", hyperparameters={"early_stopping_patience": "auto"}))
    assert plan["method"] == Method.FULL  # the tiny BERT is a small model
    assert plan["warmup_ratio"] == 0.06 and plan["early_stopping_patience"] == 3
    assert plan["early_stopping_metric"] == "eval_accuracy" and plan["lora_r"] is None
    assert plan["early_stopping_start_step"] == math.ceil(plan["total_steps"] * 2 / 3)
    no_valid = validate_spec(
        make_spec(method="auto", validation_file=None, hyperparameters={"early_stopping_patience": "auto"})
    )
    assert no_valid["early_stopping_patience"] is None and no_valid["early_stopping_start_step"] is None


def test_patience_counts_from_two_thirds_of_the_planned_steps():
    # Financial tweets: 7 epochs of 299 steps; the peak at epoch 2 no longer ends the run after epoch 5.
    assert autoconf.auto_early_stopping_start_step(2093, early_stopping=True) == 1396
    assert autoconf.auto_early_stopping_start_step(3, early_stopping=True) == 2
    assert autoconf.auto_early_stopping_start_step(2093, early_stopping=False) is None


def _accuracy_of_exported_model(out: Path, rows: list[dict]) -> float:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    lm = json.loads((out / "label_map.json").read_text())
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        batch = tok(
            [r["text"] for r in rows], padding=True, truncation=True, max_length=64, return_tensors="pt"
        )
        preds = model(**batch).logits.argmax(-1).tolist()
    return sum(lm["labels"][p] == r["label"] for p, r in zip(preds, rows, strict=True)) / len(rows)


def test_the_best_evaluation_is_exported_not_the_last(make_spec, data_dir):
    rep = RecordingReporter()
    res = train(make_spec(method="full", hyperparameters=tiny_models.PEAK_MID_RUN_HYPERPARAMETERS), rep)
    evals = [e for e in res.metrics["history"]["eval"] if e["step"] > 0]
    best = max(evals, key=lambda e: e["valid_accuracy"])
    last = evals[-1]
    assert best["valid_accuracy"] > last["valid_accuracy"], "the run must peak mid-run for this test"
    kept = res.metrics["kept"]
    assert kept["reason"] == "best" and kept["step"] < kept["last_step"] == res.steps
    assert kept["planned_steps"] == res.steps and kept["stopped_early"] is False and kept["patience"] is None
    assert res.metrics["final"]["valid_accuracy"] == best["valid_accuracy"]
    assert res.metrics["last"]["valid_accuracy"] == last["valid_accuracy"]
    out = Path(res.output_dir)
    assert json.loads((out / "metrics.json").read_text())["final"]["step"] == kept["step"]
    valid_rows = tiny_models.banking_rows(tiny_models.BANKING_TEST)
    assert math.isclose(_accuracy_of_exported_model(out, valid_rows), best["valid_accuracy"], abs_tol=1e-6)
    card = (out / "README.md").read_text()
    assert f"weights of step {kept['step']} of {res.steps}" in card


def test_early_stopping_is_on_by_default_with_a_validation_file(make_spec):
    # Nothing can improve at this rate: accuracy stays at its baseline, and the run stops after the 3
    # evaluations that follow two thirds of its 150 planned steps (100): at 105, 120 and 135.
    res = train(
        make_spec(
            out="es",
            method="auto",
            hyperparameters={"learning_rate": 1e-9, "early_stopping_patience": "auto", "n_epochs": 10},
        )
    )
    assert res.metrics["train"]["stopped_early"] is True
    assert res.steps == 9 * math.ceil(240 / 16)  # evaluated each epoch (10 epochs), patience 3
    assert res.metrics["kept"]["patience_from_step"] == 100
