"""Chat generation: template, sampling parameters, stop strings, seeds, token counts, an over-long
conversation's truncation policy, and a streaming variant (n choices, interleaved)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .artifact import CHAT
from .classify import REFUSE, TRUNCATE
from .errors import InputTooLong, InvalidRequest
from .loading import LoadedModel


@dataclass
class Choice:
    index: int
    text: str
    finish_reason: str  # "stop" | "length"
    completion_tokens: int


@dataclass
class Generation:
    choices: list[Choice]
    prompt_tokens: int
    completion_tokens: int
    truncated: bool = False  # the conversation was cut to fit the model's context


@dataclass
class StreamChunk:
    """A text delta of choice `index`; each choice's last chunk has an empty delta, its finish_reason
    and the token counts (the prompt's, the same on every choice, and that choice's completion)."""

    delta: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    index: int = 0
    truncated: bool = False


@dataclass
class GenerationParams:
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    n: int = 1
    seed: int | None = None
    # Over the context: `refuse` (InputTooLong when no room is left for one token) or `truncate`
    # (drop the oldest turns, then cut the start of what remains, so prompt + max_tokens fit).
    truncation: str = REFUSE

    def validate(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise InvalidRequest(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if not 0 <= self.temperature <= 2:
            raise InvalidRequest(f"temperature must be between 0 and 2, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise InvalidRequest(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.n, int) or not 1 <= self.n <= 16:
            raise InvalidRequest(f"n must be an integer from 1 to 16, got {self.n!r}")
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        if len(self.stop) > 4 or not all(isinstance(s, str) and s for s in self.stop):
            raise InvalidRequest("stop must be up to 4 non-empty strings")
        if self.truncation not in (TRUNCATE, REFUSE):
            raise InvalidRequest(f"truncation must be {TRUNCATE!r} or {REFUSE!r}, got {self.truncation!r}")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list")
    for i, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise InvalidRequest(f"messages[{i}] must have a string role and a string content")


def prompt_ids(lm: LoadedModel, messages: list[dict[str, str]]) -> list[int]:
    _check_messages(messages)
    with lm.tokenizer_lock:
        text = lm.tokenizer.apply_chat_template(
            messages, chat_template=lm.chat_template, add_generation_prompt=True, tokenize=False
        )
        # The template already holds every special token the model was trained with.
        return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


def _cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    hits = [text.find(s) for s in stop if s in text]
    return (text[: min(hits)], True) if hits else (text, False)


def _cut_start(lm: LoadedModel, msgs: list[dict[str, str]], i: int, budget: int) -> list[int]:
    """Keep the longest end of message i's content that lets the prompt fit `budget` (possibly
    none of it); msgs[i] is replaced. The prompt's ids."""
    with lm.tokenizer_lock:
        content = lm.tokenizer(msgs[i]["content"], add_special_tokens=False)["input_ids"]

    def attempt(keep: int) -> list[int]:
        tail = lm.tokenizer.decode(content[len(content) - keep :]) if keep else ""
        # A cut inside a character leaves replacement characters at the start.
        msgs[i] = {**msgs[i], "content": tail.lstrip("\ufffd")}
        return prompt_ids(lm, msgs)

    low, high = 0, len(content) - 1  # all of it is already known not to fit
    while low < high:
        mid = (low + high + 1) // 2
        if len(attempt(mid)) <= budget:
            low = mid
        else:
            high = mid - 1
    return attempt(low)


def _fit(lm: LoadedModel, messages: list[dict[str, str]], budget: int) -> tuple[list[int], bool]:
    """The truncate policy: drop the oldest non-system messages while another remains, then cut the
    start of the last remaining one, then of the system messages, oldest first."""
    ids = prompt_ids(lm, messages)
    if len(ids) <= budget:
        return ids, False
    msgs = list(messages)
    while len(ids) > budget:
        turns = [i for i, m in enumerate(msgs) if m["role"] != "system"]
        if len(turns) < 2:
            break
        del msgs[turns[0]]
        ids = prompt_ids(lm, msgs)
    order = [i for i, m in enumerate(msgs) if m["role"] != "system"]
    order += [i for i, m in enumerate(msgs) if m["role"] == "system"]
    for i in order:
        if len(ids) <= budget:
            break
        ids = _cut_start(lm, msgs, i, budget)
    if len(ids) > budget:  # the template's own text does not fit
        raise InputTooLong(index=0, tokens=len(ids), max_tokens=budget)
    return ids, True


def _prepare(
    lm: LoadedModel, messages: list[dict[str, str]], params: GenerationParams
) -> tuple[list[int], Any, bool]:
    from transformers import GenerationConfig

    if lm.task != CHAT:
        raise InvalidRequest(f"{lm.info.path} is a {lm.task} model, not a chat model")
    params.validate()
    if params.truncation == TRUNCATE:
        _check_messages(messages)
        # Room for the whole answer, but never less than half the context for the prompt.
        ids, truncated = _fit(lm, messages, max(lm.max_length - params.max_tokens, lm.max_length // 2))
    else:
        ids, truncated = prompt_ids(lm, messages), False
    room = lm.max_length - len(ids)
    if room < 1:
        raise InputTooLong(index=0, tokens=len(ids), max_tokens=lm.max_length - 1)
    tok = lm.tokenizer
    sample = params.temperature > 0
    cfg = GenerationConfig(
        max_new_tokens=min(params.max_tokens, room),
        do_sample=sample,
        temperature=params.temperature if sample else None,
        top_p=params.top_p if sample else None,
        top_k=0 if sample else None,
        num_return_sequences=params.n,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        stop_strings=params.stop or None,
    )
    return ids, cfg, truncated


def _run(lm: LoadedModel, ids: list[int], cfg: Any, params: GenerationParams, **extra: Any) -> torch.Tensor:
    """generate() under the model's lock: the active adapter and the global RNG are process state."""
    with lm.forward_lock, torch.inference_mode():
        if lm.group is not None:
            lm.group.activate(lm.adapter_name)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        input_ids = torch.tensor([ids], dtype=torch.long)
        return lm.module.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=cfg,
            tokenizer=lm.tokenizer,
            **extra,
        )


def _finish(lm: LoadedModel, new: list[int], params: GenerationParams, max_new: int) -> tuple[str, str, int]:
    eos = lm.tokenizer.eos_token_id
    n_tokens = len(new)
    ended = False
    if eos is not None and eos in new:
        n_tokens = new.index(eos) + 1
        ended = True
    text = lm.tokenizer.decode(new[:n_tokens], skip_special_tokens=True)
    text, stopped = _cut_at_stop(text, params.stop)
    reason = "stop" if (ended or stopped or n_tokens < max_new) else "length"
    return text, reason, n_tokens


def generate(lm: LoadedModel, messages: list[dict[str, str]], params: GenerationParams) -> Generation:
    ids, cfg, truncated = _prepare(lm, messages, params)
    out = _run(lm, ids, cfg, params)
    choices = []
    for i in range(out.shape[0]):
        text, reason, n = _finish(lm, out[i, len(ids) :].tolist(), params, cfg.max_new_tokens)
        choices.append(Choice(index=i, text=text, finish_reason=reason, completion_tokens=n))
    return Generation(
        choices=choices,
        prompt_tokens=len(ids),
        completion_tokens=sum(c.completion_tokens for c in choices),
        truncated=truncated,
    )


def stream(
    lm: LoadedModel, messages: list[dict[str, str]], params: GenerationParams
) -> Iterator[StreamChunk]:
    """Text deltas as tokens are generated, the n choices interleaved (each chunk names its choice),
    then each choice's finish chunk in index order. The n choices come from the one generate() call
    that `generate` makes, so with a seed they are the same text. Closing the iterator early stops
    generation."""
    from transformers import StoppingCriteria, StoppingCriteriaList
    from transformers.generation.streamers import BaseStreamer

    ids, cfg, truncated = _prepare(lm, messages, params)
    cancelled = threading.Event()
    steps: queue.Queue = queue.Queue()

    class _Cancel(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw: Any) -> torch.Tensor:
            return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

    class _Steps(BaseStreamer):
        """Each decoding step's new token of every choice (the first put is the prompt)."""

        prompt_seen = False

        def put(self, value: torch.Tensor) -> None:
            if self.prompt_seen:
                steps.put(value.reshape(-1).tolist())
            self.prompt_seen = True

        def end(self) -> None:
            steps.put(None)

    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["out"] = _run(
                lm, ids, cfg, params, streamer=_Steps(), stopping_criteria=StoppingCriteriaList([_Cancel()])
            )
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            result["error"] = e
            steps.put(None)

    thread = threading.Thread(target=work, name="serving-stream", daemon=True)
    thread.start()
    # Hold back what could be the start of a stop string, so no part of a stop string is ever sent.
    hold = max((len(s) for s in params.stop), default=1) - 1
    eos = lm.tokenizer.eos_token_id
    n = params.n
    tokens: list[list[int]] = [[] for _ in range(n)]
    sent, done = [0] * n, [False] * n
    try:
        while (step := steps.get(timeout=600)) is not None:
            for i, token in enumerate(step):
                if done[i]:
                    continue
                tokens[i].append(token)
                done[i] = token == eos
                text = lm.tokenizer.decode(tokens[i], skip_special_tokens=True)
                cut, stopped = _cut_at_stop(text, params.stop)
                if stopped:
                    safe, done[i] = len(cut), True
                else:
                    # An unfinished character decodes to replacement characters: wait for the rest.
                    safe = min(len(text) - hold, len(text.rstrip("\ufffd")))
                if safe > sent[i]:
                    yield StreamChunk(delta=cut[sent[i] : safe], index=i, truncated=truncated)
                    sent[i] = safe
            if all(done):
                cancelled.set()
        # The end signal has been consumed (or every choice has stopped): just join.
        thread.join()
        if "error" in result:
            raise result["error"]
        for i in range(n):
            final, reason, count = _finish(
                lm, result["out"][i, len(ids) :].tolist(), params, cfg.max_new_tokens
            )
            if len(final) > sent[i]:
                yield StreamChunk(delta=final[sent[i] :], index=i, truncated=truncated)
            yield StreamChunk(
                delta="",
                finish_reason=reason,
                prompt_tokens=len(ids),
                completion_tokens=count,
                index=i,
                truncated=truncated,
            )
    finally:
        cancelled.set()
