"""Chat generation: template, sampling parameters, stop strings, seeds, token counts, and a streaming variant."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .artifact import CHAT
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


@dataclass
class StreamChunk:
    """A text delta; the last chunk has an empty delta, the finish_reason and the token counts."""

    delta: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass
class GenerationParams:
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    n: int = 1
    seed: int | None = None

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


def _prepare(
    lm: LoadedModel, messages: list[dict[str, str]], params: GenerationParams
) -> tuple[list[int], Any]:
    from transformers import GenerationConfig

    if lm.task != CHAT:
        raise InvalidRequest(f"{lm.info.path} is a {lm.task} model, not a chat model")
    params.validate()
    ids = prompt_ids(lm, messages)
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
    return ids, cfg


def _run(lm: LoadedModel, ids: list[int], cfg: Any, params: GenerationParams, **extra: Any) -> torch.Tensor:
    """generate() under the model's lock: the active adapter and the global RNG are process state."""
    with lm.forward_lock, torch.inference_mode():
        if lm.group is not None:
            lm.group.peft_model.set_adapter(lm.adapter_name)
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
    ids, cfg = _prepare(lm, messages, params)
    out = _run(lm, ids, cfg, params)
    choices = []
    for i in range(out.shape[0]):
        text, reason, n = _finish(lm, out[i, len(ids) :].tolist(), params, cfg.max_new_tokens)
        choices.append(Choice(index=i, text=text, finish_reason=reason, completion_tokens=n))
    return Generation(
        choices=choices, prompt_tokens=len(ids), completion_tokens=sum(c.completion_tokens for c in choices)
    )


def stream(
    lm: LoadedModel, messages: list[dict[str, str]], params: GenerationParams
) -> Iterator[StreamChunk]:
    """Text deltas as tokens are generated (n must be 1). Closing the iterator early stops generation."""
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    if params.n != 1:
        raise InvalidRequest("streaming supports n=1 only")
    ids, cfg = _prepare(lm, messages, params)
    cancelled = threading.Event()

    class _Cancel(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw: Any) -> torch.Tensor:
            return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

    streamer = TextIteratorStreamer(lm.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["out"] = _run(
                lm, ids, cfg, params, streamer=streamer, stopping_criteria=StoppingCriteriaList([_Cancel()])
            )
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            result["error"] = e
            streamer.end()

    thread = threading.Thread(target=work, name="serving-stream", daemon=True)
    thread.start()
    # Hold back what could be the start of a stop string, so no part of a stop string is ever sent.
    hold = max((len(s) for s in params.stop), default=1) - 1
    text, sent, stopped = "", 0, False
    try:
        for piece in streamer:
            text += piece
            cut, stopped = _cut_at_stop(text, params.stop)
            if stopped:
                if len(cut) > sent:
                    yield StreamChunk(delta=cut[sent:])
                sent = len(cut)
                cancelled.set()
                break
            safe = len(text) - hold
            if safe > sent:
                yield StreamChunk(delta=text[sent:safe])
                sent = safe
        # The streamer's end signal has been consumed (or we broke off at a stop string): just join.
        thread.join()
        if "error" in result:
            raise result["error"]
        if not stopped:
            final, _, _ = _finish(lm, result["out"][0, len(ids) :].tolist(), params, cfg.max_new_tokens)
            if len(final) > sent:
                yield StreamChunk(delta=final[sent:])
        _, reason, n = _finish(lm, result["out"][0, len(ids) :].tolist(), params, cfg.max_new_tokens)
        yield StreamChunk(delta="", finish_reason=reason, prompt_tokens=len(ids), completion_tokens=n)
    finally:
        cancelled.set()
