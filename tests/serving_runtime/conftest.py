"""Real tiny models trained with the engine (tiny BERT, tiny GPT-2), served by serving.runtime. No Django, no network.

Run: .venv/bin/python -m pytest tests/serving_runtime -p no:django -q
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.engine import tiny_models  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("data")
    train = tiny_models.banking_rows()
    valid = tiny_models.banking_rows(tiny_models.BANKING_TEST)
    tiny_models.write_jsonl(d / "train.jsonl", train)
    tiny_models.write_jsonl(d / "valid.jsonl", valid)
    # A second labelling of the same texts: a model trained on it must answer differently.
    flipped = {"card_arrival": "lost_or_stolen_card", "lost_or_stolen_card": "card_arrival"}
    tiny_models.write_jsonl(
        d / "train_b.jsonl",
        [{"text": r["text"], "label": flipped.get(r["label"], r["label"])} for r in train],
    )
    multi = [
        {
            "text": r["text"],
            "labels": [r["label"]] + (["mentions_card"] if "card" in r["text"].lower() else []),
        }
        for r in train
    ]
    tiny_models.write_jsonl(d / "multi_train.jsonl", multi)
    tiny_models.write_jsonl(d / "chat_train.jsonl", tiny_models.chat_rows())
    return d


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory, tiny_bert, tiny_gpt2, data_dir) -> dict[str, str]:
    """Each kind of model version the runtime serves, trained for real on a few rows."""
    from finetune.engine import JobSpec, train

    root = tmp_path_factory.mktemp("artifacts")
    cache = str(tmp_path_factory.mktemp("cache"))

    def run(
        name: str, train_file: str = "train.jsonl", valid_file: str | None = "valid.jsonl", **fields
    ) -> str:
        hp = {"n_epochs": 4, "batch_size": 16, "learning_rate": 2e-2, **fields.pop("hyperparameters", {})}
        spec = {
            "base_model": tiny_bert,
            "task": "classification",
            "method": "lora",
            "train_file": str(data_dir / train_file),
            **({"validation_file": str(data_dir / valid_file)} if valid_file else {}),
            "output_dir": str(root / name),
            "cache_dir": cache,
            "seed": 1,
            "hyperparameters": hp,
            **fields,
        }
        return train(JobSpec.from_dict(spec)).output_dir

    return {
        "lora_a": run("lora_a"),
        "lora_b": run("lora_b", train_file="train_b.jsonl", valid_file=None, seed=7),
        "ia3": run("ia3", method="ia3", hyperparameters={"learning_rate": 8e-2}),
        "merged": run("merged", hyperparameters={"merge_adapter": True}),
        "full": run("full", method="full", hyperparameters={"learning_rate": 2e-3}),
        "multi": run(
            "multi", train_file="multi_train.jsonl", valid_file=None, task="multilabel_classification"
        ),
        "chat": run(
            "chat",
            train_file="chat_train.jsonl",
            valid_file=None,
            base_model=tiny_gpt2,
            task="chat_sft",
            hyperparameters={"batch_size": 4, "n_epochs": 3},
        ),
    }


@pytest.fixture(scope="session")
def resolver(tiny_bert, tiny_gpt2):
    """The platform passes the registry's lookup; here the adapters' recorded base names are the tiny folders."""
    known = {tiny_bert: tiny_bert, tiny_gpt2: tiny_gpt2}

    def resolve(name: str) -> str:
        if name not in known:
            raise LookupError(f"no base model {name!r}")
        return known[name]

    return resolve


@pytest.fixture(scope="session")
def valid_rows() -> list[dict[str, str]]:
    return tiny_models.banking_rows(tiny_models.BANKING_TEST)
