"""Bad input is refused before any compute, with a SpecError naming the field to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.engine import JobSpec, RecordingReporter, SpecError, train, validate_spec
from finetune.engine.vocabulary import Method, Task


def refusal(spec_or_dict, field: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec = spec_or_dict if isinstance(spec_or_dict, JobSpec) else JobSpec.from_dict(spec_or_dict)
        train(spec)
    err = info.value
    assert err.field == field, f"expected field {field}, got {err.field}: {err.message}"
    assert isinstance(err, ValueError) and err.code and err.message
    return err


def test_it_refuses_an_unknown_base_model(make_spec, tmp_path):
    err = refusal(make_spec(base_model="no-such-org/no-such-model"), "base_model")
    assert err.code == "unknown_base_model"
    assert not (tmp_path / "out").exists(), "nothing may be written for a refused spec"


def test_it_refuses_chat_sft_on_an_encoder_only_model(make_spec, data_dir):
    err = refusal(
        make_spec(task=Task.CHAT_SFT, train_file=str(data_dir / "chat_train.jsonl"), validation_file=None),
        "task",
    )
    assert "encoder" in err.message and err.code == "unsupported_task"


def test_it_refuses_a_lora_target_that_is_not_in_the_model(make_spec):
    err = refusal(
        make_spec(hyperparameters={"target_modules": ["query", "q_proj"]}), "hyperparameters.target_modules"
    )
    assert "q_proj" in err.message and "query" in err.message  # names the bad one and suggests real ones
    assert err.code == "invalid_target_module"


def test_it_refuses_a_target_that_is_not_a_linear_layer(make_spec):
    refusal(make_spec(hyperparameters={"target_modules": ["LayerNorm"]}), "hyperparameters.target_modules")


def test_it_refuses_max_length_zero(make_spec):
    refusal(make_spec(hyperparameters={"max_length": 0}), "hyperparameters.max_length")


def test_it_refuses_max_length_above_the_model_limit(make_spec):
    err = refusal(make_spec(hyperparameters={"max_length": 4096}), "hyperparameters.max_length")
    assert "128" in err.message  # the tiny model's position limit


@pytest.mark.parametrize("lr", [0, -1e-4])
def test_it_refuses_a_learning_rate_that_is_not_positive(make_spec, lr):
    refusal(make_spec(hyperparameters={"learning_rate": lr}), "hyperparameters.learning_rate")


def test_it_refuses_batch_size_zero(make_spec):
    refusal(make_spec(hyperparameters={"batch_size": 0}), "hyperparameters.batch_size")


def test_it_refuses_a_train_file_with_no_rows_after_filtering(make_spec, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "", "label": "x"}) + "\n" + json.dumps({"text": "hello"}) + "\n")
    err = refusal(make_spec(train_file=str(bad)), "train_file")
    assert err.code == "no_rows" and "empty text" in err.message


def test_it_refuses_validation_labels_that_training_never_saw(make_spec, tmp_path):
    valid = tmp_path / "valid.jsonl"
    valid.write_text(json.dumps({"text": "where is my parcel", "label": "parcel_tracking"}) + "\n")
    err = refusal(make_spec(validation_file=str(valid)), "validation_file")
    assert "parcel_tracking" in err.message and err.code == "unseen_labels"


def test_it_refuses_qlora_without_cuda(make_spec):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    err = refusal(make_spec(method=Method.QLORA), "method")
    assert "CUDA" in err.message and err.code == "qlora_requires_cuda"


def test_it_refuses_unknown_spec_fields_and_hyperparameters(make_spec, tiny_bert):
    base = make_spec().to_dict()
    with pytest.raises(SpecError) as info:
        JobSpec.from_dict({**base, "epochs": 3})
    assert info.value.field == "epochs"
    with pytest.raises(SpecError) as info:
        JobSpec.from_dict({**base, "hyperparameters": {"lr": 0.1}})
    assert info.value.field == "hyperparameters.lr"


def test_it_refuses_bf16_on_a_cpu_run(make_spec):
    refusal(make_spec(device="cpu", hyperparameters={"precision": "bf16"}), "hyperparameters.precision")


def test_it_refuses_an_unknown_task_and_method(make_spec):
    refusal(make_spec(task="summarization"), "task")
    refusal(make_spec(method="adapter-xl"), "method")


def test_refusals_happen_before_any_model_is_built(make_spec):
    """A refused spec stops at the plan: the engine never announces a built model nor writes output."""
    for hyperparameters, field in (
        ({"batch_size": 0}, "hyperparameters.batch_size"),
        ({"target_modules": ["nope"]}, "hyperparameters.target_modules"),
    ):
        spec = make_spec(hyperparameters=hyperparameters)
        reporter = RecordingReporter()
        with pytest.raises(SpecError) as info:
            train(spec, reporter)
        assert info.value.field == field
        assert not any("model ready" in message for _, message in reporter.logs), reporter.logs
        assert reporter.steps == [] and reporter.checkpoints == []
        assert not Path(spec.output_dir).exists()


def test_validate_spec_reports_the_resolved_plan_without_training(make_spec, tmp_path):
    spec = make_spec(
        hyperparameters={
            "n_epochs": "auto",
            "batch_size": "auto",
            "learning_rate": "auto",
            "max_length": "auto",
        }
    )
    info = validate_spec(spec)
    assert info["n_train"] == 240 and info["n_valid"] == 80
    assert info["labels"] == sorted(
        ["card_arrival", "exchange_rate", "lost_or_stolen_card", "Refund_not_showing_up"]
    )
    assert info["total_steps"] == info["n_epochs"] * -(-240 // info["batch_size"])
    assert 16 <= info["max_length"] <= 128 and info["max_length"] % 8 == 0
    assert info["trained_tokens_estimate"] > 240 * info["n_epochs"]
    assert info["learning_rate"] == 2e-3  # LoRA's auto rate
    assert not Path(spec.output_dir).exists()
