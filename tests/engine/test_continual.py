"""Continual learning: a new version starts from an earlier one, replays some old data, and measures forgetting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.engine import RecordingReporter, SpecError, train
from finetune.engine.vocabulary import Method
from tests.engine import tiny_models

OLD = {"card_arrival", "exchange_rate"}


@pytest.fixture(scope="module")
def split_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("continual")
    train_rows, valid_rows = tiny_models.banking_rows(), tiny_models.banking_rows(tiny_models.BANKING_TEST)
    for name, rows in (("train", train_rows), ("valid", valid_rows)):
        tiny_models.write_jsonl(d / f"old_{name}.jsonl", [r for r in rows if r["label"] in OLD])
        tiny_models.write_jsonl(d / f"new_{name}.jsonl", [r for r in rows if r["label"] not in OLD])
    return d


@pytest.mark.parametrize("method", [Method.LORA, Method.FULL])
def test_a_new_version_learns_new_labels_from_an_earlier_one_and_reports_forgetting(
    make_spec, split_data, method
):
    lr = 2e-2 if method == Method.LORA else 3e-3
    v1 = train(
        make_spec(
            out="v1",
            method=method,
            train_file=str(split_data / "old_train.jsonl"),
            validation_file=str(split_data / "old_valid.jsonl"),
            hyperparameters={"n_epochs": 3, "batch_size": 8, "learning_rate": lr},
        )
    )
    assert v1.metrics["final"]["valid_accuracy"] == 1.0  # two easy intents: the earlier version knows them
    rep = RecordingReporter()
    v2 = train(
        make_spec(
            out="v2",
            method=method,
            init_from=v1.output_dir,
            train_file=str(split_data / "new_train.jsonl"),
            validation_file=str(split_data / "new_valid.jsonl"),
            replay_file=str(split_data / "old_train.jsonl"),
            replay_fraction=0.5,
            previous_validation_file=str(split_data / "old_valid.jsonl"),
            hyperparameters={"n_epochs": 2, "learning_rate": lr},
        ),
        rep,
    )
    old_labels = json.loads((Path(v1.output_dir) / "label_map.json").read_text())["labels"]
    new_labels = json.loads((Path(v2.output_dir) / "label_map.json").read_text())["labels"]
    assert new_labels[:2] == old_labels and set(new_labels) == OLD | {
        "lost_or_stolen_card",
        "Refund_not_showing_up",
    }

    # 120 new rows + half of the 120 old ones replayed
    assert v2.metrics["train"]["trained_samples"] == 2 * 180
    # the new intents are learned (the grown head starts them at zero)
    assert v2.metrics["final"]["valid_accuracy"] > v2.metrics["baseline"]["base_model"]["valid_accuracy"]
    # the earlier validation set is scored at every evaluation...
    assert all("previous_valid_accuracy" in e for e in rep.evals)
    # ...and "before" is exactly the earlier version's own score on it
    forgetting = v2.metrics["forgetting"]
    assert forgetting["previous_valid_accuracy"]["before"] == v1.metrics["final"]["valid_accuracy"]
    assert forgetting["previous_valid_loss"]["before"] == pytest.approx(
        v1.metrics["final"]["valid_loss"], abs=1e-4
    )
    assert forgetting["previous_valid_accuracy"]["after"] == v2.metrics["final"]["previous_valid_accuracy"]
    card = (Path(v2.output_dir) / "README.md").read_text()
    assert "forgetting" in card and "replayed" in card


def test_continuing_an_adapter_with_another_method_is_refused(make_spec, tmp_path):
    v1 = train(make_spec(out="v1", max_steps=2, validation_file=None))
    with pytest.raises(SpecError) as info:
        train(make_spec(out="v2", method=Method.IA3, init_from=v1.output_dir))
    assert info.value.field == "init_from" and Method.LORA in info.value.message


def test_starting_from_a_directory_that_is_not_an_engine_artifact_is_refused(make_spec, tiny_bert):
    with pytest.raises(SpecError) as info:
        train(make_spec(init_from=tiny_bert))
    assert info.value.field == "init_from"
