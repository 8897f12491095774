"""Fixtures for the fine-tuning engine tests: tiny local models and small data files. No Django, no network."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Before anything imports huggingface_hub, which reads these once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from finetune.engine.vocabulary import Method, Task
from tests.engine import tiny_models  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: trains a real pretrained model (MiniLM); deselect with -m 'not slow'"
    )


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("data")
    train = tiny_models.banking_rows()
    valid = tiny_models.banking_rows(tiny_models.BANKING_TEST)
    tiny_models.write_jsonl(d / "train.jsonl", train)
    tiny_models.write_jsonl(d / "valid.jsonl", valid)
    chats = tiny_models.chat_rows()
    tiny_models.write_jsonl(d / "chat_train.jsonl", chats)
    tiny_models.write_jsonl(d / "chat_valid.jsonl", chats[:8])
    multi = [
        {
            "text": r["text"],
            "labels": [r["label"]] + (["mentions_card"] if "card" in r["text"].lower() else []),
        }
        for r in train
    ]
    multi_valid = [
        {
            "text": r["text"],
            "labels": [r["label"]] + (["mentions_card"] if "card" in r["text"].lower() else []),
        }
        for r in valid
    ]
    tiny_models.write_jsonl(d / "multi_train.jsonl", multi)
    tiny_models.write_jsonl(d / "multi_valid.jsonl", multi_valid)
    return d


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def make_spec(tiny_bert: str, data_dir: Path, cache_dir: str, tmp_path: Path) -> Callable[..., Any]:
    """A small classification spec on the tiny BERT; keyword arguments override fields and hyperparameters."""
    from finetune.engine import JobSpec

    def make(out: str = "out", hyperparameters: dict[str, Any] | None = None, **fields: Any) -> JobSpec:
        # Early stopping off: these tests count steps; tests/engine/test_auto.py covers it on by default.
        hp = {"n_epochs": 2, "batch_size": 16, "learning_rate": 5e-3, "early_stopping_patience": None}
        hp.update(hyperparameters or {})
        d: dict[str, Any] = {
            "base_model": tiny_bert,
            "task": Task.CLASSIFICATION,
            "method": Method.LORA,
            "train_file": str(data_dir / "train.jsonl"),
            "validation_file": str(data_dir / "valid.jsonl"),
            "output_dir": str(tmp_path / out),
            "cache_dir": cache_dir,
            "hyperparameters": hp,
        }
        d.update(fields)
        return JobSpec.from_dict(d)

    return make
