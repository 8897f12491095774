"""`python -m finetune.engine train spec.json [--resume]`: progress bar, one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.engine import cli
from finetune.engine.vocabulary import Method, Task
from tests.engine import tiny_models

REPO = tiny_models.REPO


def write_spec(tmp_path: Path, base: str, cache_dir: str, **fields) -> Path:
    spec = {
        "base_model": base,
        "task": Task.CLASSIFICATION,
        "method": Method.LORA,
        # the CLI also takes the CSV samples directly (text,category)
        "train_file": str(REPO / "samples/banking77/train_4intents.csv"),
        "validation_file": str(REPO / "samples/banking77/test_4intents.csv"),
        "output_dir": str(tmp_path / "out"),
        "cache_dir": cache_dir,
        "hyperparameters": {
            "n_epochs": 2,
            "batch_size": 16,
            "learning_rate": 1e-2,
            "early_stopping_patience": None,
        },
        **fields,
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture
def restore_sigint():
    old = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, old)


def test_the_cli_trains_from_a_spec_file_with_a_progress_bar(tmp_path, tiny_bert, cache_dir):
    spec = write_spec(tmp_path, tiny_bert, cache_dir)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "finetune.engine", "train", str(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "succeeded" and summary["steps"] == 30 and "valid_accuracy" in summary
    assert "30/30" in proc.stderr and "samples/s" in proc.stderr  # tqdm bar
    assert "[eval]" in proc.stderr
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_cli_resume_continues_from_the_latest_checkpoint(
    tmp_path, tiny_bert, cache_dir, capsys, restore_sigint
):
    spec = write_spec(tmp_path, tiny_bert, cache_dir)
    assert cli.main(["train", str(spec), "--quiet"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the epoch-1 checkpoint (step 15) is still there; resuming from it reproduces the same end state
    assert cli.main(["train", str(spec), "--resume"]) == 0
    captured = capsys.readouterr()
    second = json.loads(captured.out.strip().splitlines()[-1])
    assert "resuming from" in captured.err and "step-15" in captured.err
    assert "resumed from the checkpoint at step 15" in captured.err
    assert second["valid_accuracy"] == first["valid_accuracy"] and second["valid_loss"] == first["valid_loss"]


def test_cli_prints_a_spec_error_on_one_line_and_exits_2(
    tmp_path, tiny_bert, cache_dir, capsys, restore_sigint
):
    spec = write_spec(tmp_path, tiny_bert, cache_dir, hyperparameters={"learning_rate": -1})
    assert cli.main(["train", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: hyperparameters.learning_rate:")


def test_cli_validate_prints_the_plan(tmp_path, tiny_bert, cache_dir, capsys):
    spec = write_spec(tmp_path, tiny_bert, cache_dir)
    assert cli.main(["validate", str(spec)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["n_train"] == 240 and plan["total_steps"] == 30


def test_cli_prints_each_search_trial_and_the_winner(tmp_path, tiny_bert, cache_dir, capsys, restore_sigint):
    hp = {
        "n_epochs": 1,
        "batch_size": 16,
        "early_stopping_patience": None,
        "search": {"trials": 2, "budget_minutes": 30, "learning_rates": [1e-9, 1e-2]},
    }
    spec = write_spec(tmp_path, tiny_bert, cache_dir, method=Method.FULL, hyperparameters=hp)
    assert cli.main(["train", str(spec)]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["status"] == "succeeded"
    assert summary["search_winner"]["trial"] == 1 and summary["search_winner"]["learning_rate"] == 1e-2
    assert "[trial 0 rung 0] full lr=1e-09 20/20 steps: valid_accuracy=" in out.err
    assert "search winner: trial 1 (full, lr=0.01)" in out.err
