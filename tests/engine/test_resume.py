"""Pause and resume: a run stopped at step k and resumed ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finetune.engine import RecordingReporter, SpecError, train
from finetune.engine.vocabulary import Method

WEIGHTS = {
    Method.LORA: "adapter_model.safetensors",
    Method.FULL: "model.safetensors",
    Method.PROMPT_TUNING: "adapter_model.safetensors",
}


class PauseAt(RecordingReporter):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step
        self.asked = False

    def control(self) -> str:
        done = self.steps[-1]["step"] if self.steps else 0
        if done == self.step and not self.asked:
            self.asked = True
            return "pause"
        return "continue"


def _hp() -> dict:
    # dropout, warmup and weight decay make the RNG, scheduler and optimizer state all matter
    return {
        "n_epochs": 2,
        "eval_every_steps": 4,
        "lora_dropout": 0.1,
        "warmup_ratio": 0.2,
        "weight_decay": 0.01,
    }


@pytest.mark.parametrize("method,pause_at", [(Method.LORA, 11), (Method.FULL, 15), (Method.PROMPT_TUNING, 7)])
def test_a_paused_and_resumed_run_ends_with_the_same_weights_and_metrics_as_an_uninterrupted_one(
    make_spec, tmp_path, method, pause_at
):
    hp = _hp() | ({"learning_rate": 1e-3} if method == Method.FULL else {})
    straight = train(make_spec(out="straight", method=method, hyperparameters=hp))

    rep = PauseAt(pause_at)
    paused = train(make_spec(out="interrupted", method=method, hyperparameters=hp), rep)
    assert paused.status == "paused" and paused.steps == pause_at
    assert rep.checkpoints[-1]["path"] == paused.last_checkpoint
    assert not (Path(paused.output_dir) / "metrics.json").exists()

    # checkpoints must be relocatable: move it elsewhere and drop the originals
    moved = tmp_path / "elsewhere" / "ckpt"
    shutil.copytree(paused.last_checkpoint, moved)
    shutil.rmtree(Path(paused.output_dir) / "checkpoints")

    rep2 = RecordingReporter()
    resumed = train(
        make_spec(out="interrupted", method=method, hyperparameters=hp), rep2, resume_from=str(moved)
    )
    assert resumed.status == "succeeded" and resumed.steps == straight.steps
    assert rep2.steps[0]["step"] == pause_at + 1  # no step is trained twice
    assert resumed.metrics["history"] == straight.metrics["history"]
    assert resumed.trained_tokens == straight.trained_tokens
    a = load_file(str(Path(straight.output_dir) / WEIGHTS[method]))
    b = load_file(str(Path(resumed.output_dir) / WEIGHTS[method]))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_resuming_with_a_different_spec_is_refused(make_spec):
    rep = PauseAt(3)
    paused = train(make_spec(), rep)
    with pytest.raises(SpecError) as info:
        train(make_spec(hyperparameters={"learning_rate": 1e-2}), resume_from=paused.last_checkpoint)
    assert info.value.field == "resume_from" and "learning_rate" in info.value.message


def test_a_checkpoint_made_before_early_stopping_start_step_existed_still_resumes(make_spec):
    # A job checkpointed by the previous release, resumed after an upgrade, must not be refused.
    hp = {"early_stopping_patience": 3}
    paused = train(make_spec(hyperparameters=hp), PauseAt(3))
    state_file = Path(paused.last_checkpoint) / "state.json"
    saved = json.loads(state_file.read_text())
    saved["identity"]["hyperparameters"].pop("early_stopping_start_step", None)
    state_file.write_text(json.dumps(saved))
    resumed = train(make_spec(hyperparameters=hp), resume_from=paused.last_checkpoint)
    assert resumed.status == "succeeded" and resumed.steps > 3


def test_resuming_from_something_that_is_not_a_checkpoint_is_refused(make_spec, tmp_path):
    with pytest.raises(SpecError) as info:
        train(make_spec(), resume_from=str(tmp_path))
    assert info.value.field == "resume_from"
