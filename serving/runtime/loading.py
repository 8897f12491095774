"""Building servable models from artifact folders: shared bases with peft adapters, or standalone weights."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from finetune.engine.data import DEFAULT_CHAT_TEMPLATE
from finetune.engine.modeling import position_limit, quiet_transformers

from .artifact import CHAT, MULTILABEL, ArtifactInfo
from .errors import ArtifactError

BaseResolver = Callable[[str], str]

# Adapter types whose layers accept peft's per-row `adapter_names` (mixed-adapter batches).
MIXED_BATCH_TYPES = frozenset({"LORA"})


def module_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


@dataclass(eq=False)
class BaseGroup:
    """One base model in memory and every adapter attached to it; `lock` serialises use and mutation."""

    key: tuple
    peft_model: Any
    base_bytes: int
    peft_type: str
    adapters: set[str] = field(default_factory=set)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def supports_mixed_batch(self) -> bool:
        return self.peft_type in MIXED_BATCH_TYPES

    @property
    def base_module(self) -> nn.Module:
        return self.peft_model.get_base_model()


@dataclass(eq=False)
class LoadedModel:
    """A servable model version. Adapters point at their BaseGroup; standalone models own `module`."""

    key: tuple
    info: ArtifactInfo
    tokenizer: Any
    max_length: int
    nbytes: int
    module: nn.Module
    adapter_name: str | None = None
    group: BaseGroup | None = None
    quantized: bool = False
    tokenizer_key: str = ""
    # Fast tokenizers change backend state (truncation) per call: one lock per tokenizer object.
    tokenizer_lock: threading.Lock = field(default_factory=threading.Lock)
    lock: threading.RLock = field(default_factory=threading.RLock)
    pins: int = 0
    evicted: bool = False

    @property
    def task(self) -> str:
        return self.info.task

    @property
    def forward_lock(self) -> threading.RLock:
        return self.group.lock if self.group is not None else self.lock

    @property
    def chat_template(self) -> str:
        return getattr(self.tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE


def _model_class(task: str) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    return AutoModelForCausalLM if task == CHAT else AutoModelForSequenceClassification


def _label_kwargs(info: ArtifactInfo) -> dict[str, Any]:
    if not info.is_classifier:
        return {}
    return {
        "num_labels": len(info.labels),
        "id2label": dict(enumerate(info.labels)),
        "label2id": {label: i for i, label in enumerate(info.labels)},
        "problem_type": "multi_label_classification"
        if info.task == MULTILABEL
        else "single_label_classification",
    }


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
)


def tokenizer_fingerprint(path: str) -> str:
    """Same files, same tokenizer: adapters over one base share one in memory (each costs ~10 MB)."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha1()
    for name in TOKENIZER_FILES:
        f = Path(path) / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def load_tokenizer(path: str, info: ArtifactInfo) -> Any:
    from transformers import AutoTokenizer

    with quiet_transformers():
        tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def load_base(path: str, info: ArtifactInfo) -> nn.Module:
    with quiet_transformers():
        model = _model_class(info.task).from_pretrained(path, dtype=torch.float32, **_label_kwargs(info))
    if model.config.pad_token_id is None and info.is_classifier:
        from transformers import AutoTokenizer

        model.config.pad_token_id = AutoTokenizer.from_pretrained(path).pad_token_id
    return model.eval()


def resolve(resolver: BaseResolver, info: ArtifactInfo) -> str:
    if not info.base_model:
        raise ArtifactError(f"{info.path}: the adapter does not name its base model")
    try:
        return resolver(info.base_model)
    except Exception as e:  # noqa: BLE001 - any resolver failure is "cannot serve this artifact"
        raise ArtifactError(f"{info.path}: base model {info.base_model!r} cannot be resolved: {e}") from None


def group_key(base_path: str, info: ArtifactInfo) -> tuple:
    # Classifier heads of different widths cannot share one peft model's head wrapper, nor can tuner types mix.
    return (base_path, "chat" if info.task == CHAT else f"cls{len(info.labels)}", info.peft_type)


def new_group(base_path: str, info: ArtifactInfo, adapter_name: str) -> BaseGroup:
    from peft import PeftModel

    base = load_base(base_path, info)
    base_bytes = module_bytes(base)
    with quiet_transformers():
        peft_model = PeftModel.from_pretrained(base, info.adapter_dir, adapter_name=adapter_name)
    peft_model.eval()
    group = BaseGroup(
        key=group_key(base_path, info), peft_model=peft_model, base_bytes=base_bytes, peft_type=info.peft_type
    )
    group.adapters.add(adapter_name)
    return group


def attach_adapter(group: BaseGroup, info: ArtifactInfo, adapter_name: str) -> None:
    with group.lock, quiet_transformers():
        group.peft_model.load_adapter(info.adapter_dir, adapter_name=adapter_name)
        group.peft_model.eval()
        group.adapters.add(adapter_name)


def adapter_bytes(group: BaseGroup, adapter_name: str) -> int:
    total = 0
    for name, p in group.peft_model.named_parameters():
        parts = name.split(".")
        if adapter_name in parts:
            total += p.numel() * p.element_size()
    return total


def detach_adapter(group: BaseGroup, adapter_name: str) -> None:
    with group.lock:
        group.peft_model.delete_adapter(adapter_name)
        group.adapters.discard(adapter_name)


def load_standalone(info: ArtifactInfo, resolver: BaseResolver, *, merge_adapter: bool) -> nn.Module:
    """Full or merged weights in a model of its own: a merged export's root, or an adapter folded into a private base."""
    if merge_adapter:
        from peft import PeftModel

        base = load_base(resolve(resolver, info), info)
        with quiet_transformers():
            model = PeftModel.from_pretrained(base, info.adapter_dir).merge_and_unload()
        return model.eval()
    return load_base(info.path, info)


def quantize_int8(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Dynamic int8 quantization of every Linear layer (weights int8, activations quantized on the fly); CPU only."""
    return torch.ao.quantization.quantize_dynamic(
        model.cpu(), {nn.Linear}, dtype=torch.qint8, inplace=inplace
    ).eval()


def int8_bytes(model: nn.Module) -> int:
    """Estimated size after quantize_int8 (packed int8 weights are no longer parameters, so count before)."""
    linear = sum(m.weight.numel() * 3 for m in model.modules() if isinstance(m, nn.Linear))
    return module_bytes(model) - linear


def max_length_of(module: nn.Module, tokenizer: Any) -> int:
    limit = position_limit(module.config, tokenizer)
    return int(limit) if limit else 512
