"""`/v1/classifications` and `/v1/chat/completions` with the official `openai` client against a live
server: a really trained tiny BERT classifier and a tiny GPT-2 (built in the test, with a chat
template) behind alice's endpoints; streaming in OpenAI's chunk shape; every refusal in OpenAI's
error shape naming the parameter; other teams and keys without the `inference` scope."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import openai
import pytest

from finetune.models import ModelVersion
from tests.celery_harness import wait_until
from tests.jobs.conftest import submit
from tests.jobs.tiny import banking_rows
from tests.openai.conftest import client_for
from tests.serving.conftest import deploy, make_version

CARD_TEXT = "my card has not arrived yet, when will it come"
MSG = [{"role": "user", "content": "What do bees make?"}]
# The engine's `<|role|>` markers, as a Jinja chat template in the tokenizer's own config.
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


@pytest.fixture(scope="session")
def chat_model_dir(tiny_gpt2, tmp_path_factory):
    """The session's tiny GPT-2 as a plain Hugging Face folder that carries a chat template."""
    folder = tmp_path_factory.mktemp("chat-model") / "tiny-gpt2-chat"
    shutil.copytree(tiny_gpt2, folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = TEMPLATE
    config_path.write_text(json.dumps(config))
    return str(folder)


@pytest.fixture
def chat_live(alice_client, team, dataset_version, chat_model_dir):
    """alice's endpoint `chat` serving the tiny GPT-2."""
    job_id = submit(alice_client, dataset_version)["id"]
    version = make_version(team, job_id, chat_model_dir, name="chat")
    ModelVersion.objects.filter(pk=version.pk).update(task="chat_sft", metrics={})
    r = alice_client.post("/api/v1/endpoints", {"slug": "chat", "model_version": version.id}, format="json")
    assert r.status_code == 201, r.content
    deploy(r.json()["id"])
    return ModelVersion.objects.get(pk=version.pk)


@pytest.fixture
def infer(live_server, team, alice):
    """The official client with an `inference` key of alice's team."""
    return client_for(live_server, raw_key(team, alice, ["inference"]))


def raw_key(team, user, scopes) -> str:
    from accounts.apikeys import apikey_create

    return apikey_create(team=team, name="inference client", scopes=scopes, user=user)[1]


def classify(client, **body):
    return client.post("/classifications", cast_to=object, body=body)


def refusal(call) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        call()
    return info.value


# --- classification -------------------------------------------------------------------------------


def test_classifications_answer_the_trained_model_by_endpoint_slug_and_by_model_name(
    infer, alice_client, live, versions
):
    native = alice_client.post(
        "/api/v1/endpoints/support/predict", {"input": [CARD_TEXT, "I lost my card"]}, format="json"
    ).json()
    body = classify(infer, model="support", input=[CARD_TEXT, "I lost my card"])
    assert body["object"] == "list" and body["model"] == "support"
    assert [row["index"] for row in body["data"]] == [0, 1]
    assert [row["label"] for row in body["data"]] == [row["label"] for row in native["data"]]
    for row in body["data"]:
        assert row["score"] == max(row["scores"].values()) and row["truncated"] is False
        assert abs(sum(row["scores"].values()) - 1) < 1e-4
    assert body["usage"]["prompt_tokens"] == native["usage"]["input_tokens"] > 0
    one = classify(infer, model=versions["a"].name, input=CARD_TEXT)
    assert one["model"] == versions["a"].name and len(one["data"]) == 1
    assert one["data"][0]["label"] == body["data"][0]["label"]


def test_models_lists_the_teams_endpoints(infer, live, versions):
    ids = [m.id for m in infer.models.list().data]
    assert "support" in ids and versions["a"].name in ids
    assert infer.models.retrieve("support").owned_by == versions["a"].team_id


@pytest.mark.parametrize(
    "body, param, code",
    [
        ({"input": []}, "input", "empty_input"),
        ({"input": ["fine", "  "]}, "input[1]", "empty_input"),
        ({"input": ["hi"] * 65}, "input", "too_many_inputs"),
        ({"input": [3]}, "input[0]", "invalid"),
        ({"model": "", "input": "hi"}, "model", "missing_model"),
    ],
)
def test_bad_classification_input_is_a_400_naming_the_param(infer, live, body, param, code):
    e = refusal(lambda: classify(infer, **{"model": "support", **body}))
    assert e.status_code == 400 and e.param == param and e.code == code
    assert set(e.body) == {"message", "type", "param", "code"} and e.type == "invalid_request_error"


def test_over_long_input_is_truncated_and_said_so_or_refused_per_the_endpoint(infer, alice_client, live):
    long_text = "card " * 2000
    body = classify(infer, model="support", input=["ok", long_text])
    assert [row["truncated"] for row in body["data"]] == [False, True]
    r = alice_client.patch("/api/v1/endpoints/support", {"options": {"truncation": "refuse"}}, format="json")
    assert r.status_code == 200
    e = refusal(lambda: classify(infer, model="support", input=["ok", long_text]))
    assert e.status_code == 400 and e.code == "input_too_long" and e.param == "input[1]"


def test_a_chat_request_to_a_classifier_and_the_reverse_name_the_param(infer, live, chat_live):
    e = refusal(lambda: infer.chat.completions.create(model="support", messages=MSG))
    assert e.status_code == 400 and e.code == "wrong_task" and e.param == "messages"
    e = refusal(lambda: classify(infer, model="chat", input="hello"))
    assert e.status_code == 400 and e.code == "wrong_task" and e.param == "model"


# --- chat -----------------------------------------------------------------------------------------


def test_chat_completion_in_openais_shape_with_usage(infer, chat_live):
    c = infer.chat.completions.create(model="chat", messages=MSG, max_tokens=12, temperature=0)
    assert c.object == "chat.completion" and c.model == "chat" and c.id.startswith("chatcmpl-")
    assert c.system_fingerprint == chat_live.id
    (choice,) = c.choices
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert 0 < c.usage.completion_tokens <= 12 and c.usage.prompt_tokens > 0
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
    by_name = infer.chat.completions.create(model=chat_live.name, messages=MSG, max_tokens=12, temperature=0)
    assert by_name.choices[0].message.content == choice.message.content


def test_n_choices_and_seed_reproducibility(infer, chat_live):
    def ask(seed):
        c = infer.chat.completions.create(
            model="chat", messages=MSG, max_tokens=10, temperature=1.5, n=3, seed=seed
        )
        assert [x.index for x in c.choices] == [0, 1, 2]
        return [x.message.content for x in c.choices], c.usage

    first, usage = ask(11)
    again, _ = ask(11)
    other, _ = ask(12)
    assert first == again and first != other
    assert len(set(first)) > 1  # three samples, not three copies
    assert usage.completion_tokens > 0


def test_stop_cuts_the_answer_before_the_stop_string(infer, chat_live):
    # Sampled with a seed (the untrained model's greedy answer repeats one token).
    ask = dict(model="chat", messages=MSG, max_tokens=30, temperature=1.0, seed=3)
    text = infer.chat.completions.create(**ask).choices[0].message.content
    # A stop string whose first occurrence is inside the answer, not at its start.
    at = next(
        i for i in range(2, len(text) - 1) if text[i : i + 2].strip() and text.find(text[i : i + 2]) == i
    )
    stop = text[at : at + 2]
    cut = infer.chat.completions.create(**ask, stop=[stop])
    assert cut.choices[0].message.content == text[:at]
    assert cut.choices[0].finish_reason == "stop"


def test_streamed_chat_in_openais_chunk_shape_ends_with_usage(infer, chat_live):
    whole = infer.chat.completions.create(model="chat", messages=MSG, max_tokens=20, temperature=1.2, seed=5)
    chunks = list(
        infer.chat.completions.create(
            model="chat",
            messages=MSG,
            max_tokens=20,
            temperature=1.2,
            seed=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(ch.object == "chat.completion.chunk" and ch.id == chunks[0].id for ch in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole.choices[0].message.content
    assert len([ch for ch in chunks if ch.choices and ch.choices[0].delta.content]) > 1
    finished = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finished == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(ch.usage is None for ch in chunks[:-1])


def test_streamed_n_choices_equal_the_non_streamed_choices_with_a_seed(infer, chat_live):
    ask = dict(model="chat", messages=MSG, max_tokens=12, temperature=1.5, n=3, seed=11)
    whole = infer.chat.completions.create(**ask)
    chunks = list(infer.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    texts, finished, roles = {}, {}, []
    for ch in chunks:
        for c in ch.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
            if c.delta.role:
                roles.append(c.index)
            if c.finish_reason:
                finished[c.index] = c.finish_reason
    assert roles == [0, 1, 2] and sorted(texts) == [0, 1, 2]
    assert [texts[i] for i in range(3)] == [c.message.content for c in whole.choices]
    assert len(set(texts.values())) > 1  # three samples, streamed side by side
    assert [finished[i] for i in range(3)] == [c.finish_reason for c in whole.choices]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.prompt_tokens == whole.usage.prompt_tokens
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert usage.total_tokens == whole.usage.total_tokens


def test_an_over_long_conversation_is_truncated_and_said_so_or_refused_per_the_endpoint(
    infer, alice_client, chat_live
):
    # The tiny GPT-2 takes 256 tokens; the first user turn alone is longer.
    convo = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "bees " * 400},
        {"role": "assistant", "content": "Yes."},
        *MSG,
    ]
    ask = dict(model="chat", messages=convo, max_tokens=8, temperature=0)
    raw = infer.chat.completions.with_raw_response.create(**ask)
    assert raw.headers["x-tuneforge-truncated"] == "true"
    cut = raw.parse()
    assert cut.to_dict()["truncated"] is True and cut.usage.prompt_tokens + 8 <= 256
    # The oldest turn went: the answer is the one to the conversation without it.
    kept = infer.chat.completions.with_raw_response.create(**{**ask, "messages": [convo[0], convo[2], *MSG]})
    assert kept.headers["x-tuneforge-truncated"] == "false" and kept.parse().to_dict()["truncated"] is False
    assert kept.parse().choices[0].message.content == cut.choices[0].message.content
    streamed = infer.chat.completions.with_raw_response.create(**ask, stream=True)
    assert streamed.headers["x-tuneforge-truncated"] == "true"
    text = "".join(ch.choices[0].delta.content or "" for ch in streamed.parse() if ch.choices)
    assert text == cut.choices[0].message.content
    r = alice_client.patch("/api/v1/endpoints/chat", {"options": {"truncation": "refuse"}}, format="json")
    assert r.status_code == 200, r.content
    for stream in (False, True):
        e = refusal(lambda stream=stream: infer.chat.completions.create(**ask, stream=stream))
        assert e.status_code == 400 and e.code == "input_too_long" and e.param == "messages", e.body


def _raw_stream(live_server, raw_key, body):
    request = urllib.request.Request(
        f"{live_server.url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"},
    )
    return urllib.request.urlopen(request, timeout=60)


def test_the_event_stream_on_the_wire_ends_with_done(live_server, team, alice, chat_live):
    raw = raw_key(team, alice, ["inference"])
    with _raw_stream(
        live_server, raw, {"model": "chat", "messages": MSG, "max_tokens": 5, "stream": True}
    ) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        lines = [line.decode() for line in r]
    events = [line for line in lines if line.strip()]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1].strip() == "data: [DONE]"
    last = json.loads(events[-2][len("data: ") :])
    assert last["choices"][0]["finish_reason"] in ("stop", "length") and "usage" not in last


def test_a_client_that_goes_away_stops_the_generation(live_server, team, alice, chat_live):
    raw = raw_key(team, alice, ["inference"])
    body = {"model": "chat", "messages": MSG, "max_tokens": 200, "temperature": 1.0, "stream": True}
    with _raw_stream(live_server, raw, body) as r:
        r.readline()  # the role chunk: generation is under way
    # The server notices at its next write, closes the stream and its generation thread ends.
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name == "serving-stream"],
        timeout=60,
        message="the generation thread to end",
    )


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 17}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_bad_chat_input_is_a_400_naming_the_param(infer, chat_live, extra, param):
    body = {"model": "chat", "messages": MSG, **extra}
    e = refusal(lambda: infer.post("/chat/completions", cast_to=object, body=body))
    assert e.status_code == 400 and e.param == param, e.body


# --- access ---------------------------------------------------------------------------------------


def test_charlie_gets_404_on_alices_endpoints_and_models(charlie_openai, live_server, charlie_team, charlie, live, versions):  # fmt: skip
    charlie_infer = client_for(live_server, raw_key(charlie_team, charlie, ["inference"]))
    for model in ("support", versions["a"].name):
        e = refusal(lambda model=model: classify(charlie_infer, model=model, input="hi"))
        assert e.status_code == 404 and e.param == "model"
        e = refusal(lambda model=model: charlie_infer.chat.completions.create(model=model, messages=MSG))
        assert e.status_code == 404
    assert "support" not in [m.id for m in charlie_infer.models.list().data]


def test_a_key_without_the_inference_scope_gets_403(alice_openai, live):
    e = refusal(lambda: classify(alice_openai, model="support", input="hi"))
    assert e.status_code == 403 and e.code == "missing_scope" and e.type == "permission_error"
    e = refusal(lambda: alice_openai.chat.completions.create(model="support", messages=MSG))
    assert e.status_code == 403


def test_a_key_restricted_to_other_endpoints_gets_403(live_server, team, alice, live):
    from accounts.apikeys import apikey_create

    _, raw = apikey_create(team=team, name="k", scopes=["inference"], user=alice, endpoints=["other"])
    e = refusal(lambda: classify(client_for(live_server, raw), model="support", input="hi"))
    assert e.status_code == 403 and e.code == "endpoint_not_allowed" and e.param == "model"


# --- the native predict of a generation endpoint, and the endpoint page's snippets ----------------


def test_native_predict_of_a_generation_endpoint_gives_text_and_token_counts(alice_client, chat_live):
    r = alice_client.post(
        "/api/v1/endpoints/chat/predict",
        {"input": "What do bees make?", "max_tokens": 6, "seed": 1},
        format="json",
    )
    assert r.status_code == 200, r.content
    body = r.json()
    (row,) = body["data"]
    assert isinstance(row["text"], str) and row["finish_reason"] in ("stop", "length")
    assert body["model_version"] == chat_live.id
    assert body["usage"]["prompt_tokens"] > 0 and 0 < body["usage"]["completion_tokens"] <= 6


def _snippets(page: str) -> list[str]:
    return [html.unescape(block) for block in re.findall(r"<pre><code>(.*?)</code></pre>", page, re.S)]


@pytest.mark.slow
def test_the_endpoint_pages_snippets_run_as_copied(live_server, alice_client, team, alice, live, chat_live):
    host = live_server.url.removeprefix("http://")
    env = {**os.environ, "TUNEFORGE_API_KEY": raw_key(team, alice, ["inference"])}
    labels = {row["label"] for row in banking_rows()}
    for slug in ("support", "chat"):
        page = alice_client.get(f"/endpoints/{slug}/", HTTP_HOST=host).content.decode()
        curl, program = _snippets(page)
        assert f"{live_server.url}/api/v1/endpoints/{slug}/predict" in curl
        assert f'base_url="{live_server.url}/v1"' in program and f'"{slug}"' in program
        shell = subprocess.run(["bash", "-c", curl], env=env, capture_output=True, text=True, timeout=120)
        assert shell.returncode == 0 and json.loads(shell.stdout)["data"], shell.stdout + shell.stderr
        python = subprocess.run(
            [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120
        )
        assert python.returncode == 0, python.stderr
        if slug == "support":  # the program prints the label the trained classifier gives "Hello"
            assert python.stdout.strip() in labels


@pytest.fixture
def gunicorn_server(transactional_db):
    """The production web server (gunicorn with deploy/gunicorn.conf.py) on the test database."""
    from tests.celery_harness import ROOT, worker_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.Popen(
        [
            str(gunicorn),
            "config.wsgi:application",
            "--config",
            "deploy/gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "120",
        ],  # fmt: skip
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
            return True
        except OSError:
            return False

    try:
        wait_until(answers, timeout=90, interval=0.3, message="gunicorn answering /healthz")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.mark.slow
def test_streaming_works_under_gunicorn(gunicorn_server, team, alice, chat_live):
    client = openai.OpenAI(
        api_key=raw_key(team, alice, ["inference"]),
        base_url=f"{gunicorn_server}/v1",
        max_retries=0,
        timeout=120,
    )
    ask = dict(model="chat", messages=MSG, max_tokens=12, temperature=1.0, seed=2)
    whole = client.chat.completions.create(**ask).choices[0].message.content
    chunks = list(client.chat.completions.create(**ask, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == whole
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


# --- quotas on the /v1/ face (serving/usage_gate.py) ------------------------------------------------


def _limited_key(team, alice, **limits):
    from accounts.apikeys import apikey_create
    from serving.models import QuotaPolicy

    api_key, raw = apikey_create(team=team, name="limited", scopes=["inference"], user=alice)
    QuotaPolicy.objects.create(team=team, api_key=api_key, **limits)
    return raw


def test_the_official_client_raises_rate_limit_error_with_retry_after(live_server, team, alice, live):
    from tests.quotas.conftest import wait_for_a_fresh_minute

    wait_for_a_fresh_minute(needed=20)
    from tests.quotas.conftest import http_post

    raw = _limited_key(team, alice, requests_per_minute=1)
    status, headers, _body = http_post(
        f"{live_server.url}/v1/classifications", {"model": "support", "input": CARD_TEXT}, key=raw
    )
    assert status == 200
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    client = client_for(live_server, raw)
    with pytest.raises(openai.RateLimitError) as info:
        classify(client, model="support", input=CARD_TEXT)
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert info.value.code == "rate_limit_exceeded"


def test_a_streamed_chat_settles_the_tokens_it_really_used(live_server, team, alice, chat_live):
    from tests.quotas.conftest import wait_for_a_fresh_minute

    wait_for_a_fresh_minute(needed=30)
    client = client_for(live_server, _limited_key(team, alice, tokens_per_minute=10_000))
    chunks = list(
        client.chat.completions.create(
            model="chat",
            messages=MSG,
            max_tokens=40,
            n=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    used = chunks[-1].usage.total_tokens  # the prompt once, both choices' completions
    # The stream reserved 2 x 40 tokens up front; once it ended only what it used stays counted, so
    # the next call (reserving its own max_tokens of 1) sees 10,000 - used - 1 left.
    nxt = client.chat.completions.with_raw_response.create(model="chat", messages=MSG, max_tokens=1)
    assert int(nxt.headers["x-ratelimit-remaining-tokens"]) == 10_000 - used - 1
