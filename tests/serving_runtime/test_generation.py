"""Chat generation parameters and streaming, on a tiny GPT-2 trained with the engine."""

from __future__ import annotations

import pytest

from serving.runtime import InputTooLong, InvalidRequest, ModelCache, generate, stream
from serving.runtime.generate import GenerationParams

MSG = [{"role": "user", "content": "What do bees make?"}]


@pytest.fixture(scope="module")
def chat(artifacts, resolver):
    return ModelCache(resolve_base=resolver).get(artifacts["chat"])


def test_chat_adapter_is_served_over_a_shared_base_with_the_tokenizer_template(chat):
    assert chat.group is not None and chat.info.task == "chat"
    assert "<|assistant|>" in chat.tokenizer.apply_chat_template(
        MSG, chat_template=chat.chat_template, add_generation_prompt=True, tokenize=False
    )


def test_same_seed_same_text_other_seed_differs(chat):
    p = dict(max_tokens=12, temperature=1.5, top_p=1.0, n=3)
    a = generate(chat, MSG, GenerationParams(seed=11, **p))
    b = generate(chat, MSG, GenerationParams(seed=11, **p))
    c = generate(chat, MSG, GenerationParams(seed=12, **p))
    assert [x.text for x in a.choices] == [x.text for x in b.choices]
    assert [x.text for x in a.choices] != [x.text for x in c.choices]
    assert len(a.choices) == 3 and [x.index for x in a.choices] == [0, 1, 2]
    assert len({x.text for x in a.choices}) > 1  # n samples, not n copies


def test_max_tokens_ends_with_length_and_counts_tokens(chat):
    g = generate(chat, MSG, GenerationParams(max_tokens=3, temperature=1.5, seed=3))
    prompt = chat.tokenizer.apply_chat_template(
        MSG, chat_template=chat.chat_template, add_generation_prompt=True, tokenize=False
    )
    assert g.prompt_tokens == len(chat.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    (c,) = g.choices
    if c.finish_reason == "length":
        assert c.completion_tokens == 3
    else:  # the model chose end-of-text within 3 tokens
        assert c.completion_tokens <= 3
    long = [generate(chat, MSG, GenerationParams(max_tokens=2, temperature=2.0, seed=s)) for s in range(6)]
    assert any(x.choices[0].finish_reason == "length" and x.choices[0].completion_tokens == 2 for x in long)


def test_stop_cuts_before_the_stop_string(chat):
    free = generate(chat, MSG, GenerationParams(max_tokens=30, temperature=0))
    text = free.choices[0].text
    assert len(text) > 4, text
    stop = text[2:4]
    g = generate(chat, MSG, GenerationParams(max_tokens=30, temperature=0, stop=[stop]))
    assert g.choices[0].text == text[: text.find(stop)]
    assert g.choices[0].finish_reason == "stop"


def test_streamed_deltas_concatenate_to_the_same_text(chat):
    for params in (
        dict(max_tokens=20, temperature=1.2, seed=5),
        dict(max_tokens=20, temperature=0),
    ):
        whole = generate(chat, MSG, GenerationParams(**params)).choices[0]
        chunks = list(stream(chat, MSG, GenerationParams(**params)))
        assert "".join(c.delta for c in chunks) == whole.text
        assert len([c for c in chunks if c.delta]) > 1
        assert chunks[-1].finish_reason == whole.finish_reason
        assert chunks[-1].completion_tokens == whole.completion_tokens


def test_streamed_n_choices_are_the_generated_choices_with_their_index(chat):
    p = dict(max_tokens=12, temperature=1.5, n=3, seed=11)
    whole = generate(chat, MSG, GenerationParams(**p))
    chunks = list(stream(chat, MSG, GenerationParams(**p)))
    assert [c.index for c in chunks if c.finish_reason] == [0, 1, 2]
    for choice in whole.choices:
        mine = [c for c in chunks if c.index == choice.index]
        assert "".join(c.delta for c in mine) == choice.text
        assert mine[-1].finish_reason == choice.finish_reason
        assert mine[-1].completion_tokens == choice.completion_tokens
        assert mine[-1].prompt_tokens == whole.prompt_tokens


def test_an_over_long_conversation_is_truncated_or_refused(chat):
    system = {"role": "system", "content": "Be brief."}
    long = {"role": "user", "content": "bees make honey " * 200}
    convo = [system, long, {"role": "assistant", "content": "Yes."}, *MSG]
    p = dict(max_tokens=8, temperature=0)
    with pytest.raises(InputTooLong):
        generate(chat, convo, GenerationParams(**p))  # refuse is the runtime's default
    # The oldest turn goes first: what is left is answered as if it had been sent alone.
    cut = generate(chat, convo, GenerationParams(truncation="truncate", **p))
    kept = generate(chat, [system, convo[2], *MSG], GenerationParams(truncation="truncate", **p))
    assert cut.truncated and not kept.truncated
    assert cut.prompt_tokens == kept.prompt_tokens and cut.choices[0].text == kept.choices[0].text
    # One turn that is too long alone loses its start: prompt + max_tokens fit the context.
    alone = generate(chat, [system, long], GenerationParams(truncation="truncate", **p))
    assert alone.truncated and alone.prompt_tokens + 8 <= chat.max_length
    assert alone.prompt_tokens > chat.max_length - 8 - 10  # cut no more than needed
    chunks = list(stream(chat, [system, long], GenerationParams(truncation="truncate", **p)))
    assert all(c.truncated for c in chunks) and chunks[-1].prompt_tokens == alone.prompt_tokens


def test_streaming_with_stop_never_sends_the_stop_string(chat):
    text = generate(chat, MSG, GenerationParams(max_tokens=30, temperature=0)).choices[0].text
    stop = text[3:6]
    chunks = list(stream(chat, MSG, GenerationParams(max_tokens=30, temperature=0, stop=[stop])))
    assert "".join(c.delta for c in chunks) == text[: text.find(stop)]
    assert chunks[-1].finish_reason == "stop"


def test_bad_parameters_are_refused(chat, artifacts, resolver):
    for bad in (dict(max_tokens=0), dict(temperature=3), dict(top_p=0), dict(n=0), dict(stop=[""])):
        with pytest.raises(InvalidRequest):
            generate(chat, MSG, GenerationParams(**bad))
    with pytest.raises(InvalidRequest, match="truncation"):
        generate(chat, MSG, GenerationParams(truncation="cut"))
    with pytest.raises(InvalidRequest, match="messages\\[0\\]"):
        generate(chat, [{"role": "user"}], GenerationParams())
    classifier = ModelCache(resolve_base=resolver).get(artifacts["lora_a"])
    with pytest.raises(InvalidRequest, match="not a chat model"):
        generate(classifier, MSG, GenerationParams())
