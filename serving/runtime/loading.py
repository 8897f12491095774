"""Building servable models from artifact folders: shared bases with peft adapters, or standalone weights."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
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
    # The adapter our last `activate` made active (None after an attach or a detach, which may move it).
    active: str | None = None
    # (LoRA layers, modules_to_save wrappers) of the shared model by module path, for `_fast_attach`.
    layout: tuple[dict, dict] | None = None

    @property
    def supports_mixed_batch(self) -> bool:
        return self.peft_type in MIXED_BATCH_TYPES

    def activate(self, adapter_name: str) -> None:
        """Make `adapter_name` the active adapter (call with `lock` held). set_adapter walks every
        module, so it runs only when another adapter (or someone else's set_adapter) came between."""
        if self.active != adapter_name or self.peft_model.active_adapter != adapter_name:
            self.peft_model.set_adapter(adapter_name)
            self.active = adapter_name

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


# LoRA config fields two adapters of one group may differ in and still be attached by `_fast_attach`
# (update_layer reads them from the adapter's own config); any other difference takes peft's path.
_PER_ADAPTER_FIELDS = frozenset(
    {"r", "lora_alpha", "lora_dropout", "use_rslora", "init_lora_weights", "inference_mode",
     "base_model_name_or_path", "revision", "peft_version", "auto_mapping"}
)  # fmt: skip
_STATE_PREFIX = "base_model.model."


def _layout(config) -> dict:
    def norm(v):
        # peft appends the task's default heads to a loaded config's modules_to_save (repeats too).
        return tuple(sorted(set(map(str, v)))) if isinstance(v, list | set | tuple) else v

    return {k: norm(v) for k, v in config.to_dict().items() if k not in _PER_ADAPTER_FIELDS}


def _fast_attach(group: BaseGroup, info: ArtifactInfo, adapter_name: str) -> bool:
    """Attach a LoRA adapter laid out like the group's others without peft's generic load_adapter:
    that walks every module of the shared model a few dozen times (inject, trainability, state-dict
    key remapping, set_adapter), and the model grows with each adapter, so at 20 adapters one cold
    attach cost ~100 ms. Here: one update_layer per LoRA layer the group already has, a copy of
    each modules_to_save head, and the saved tensors copied in. False (nothing changed) when the
    adapter does not fit that shape exactly (other targets, another tuner, unknown keys): the caller
    then takes peft's path."""
    from peft import LoraConfig, PeftConfig
    from peft.tuners.lora import LoraLayer
    from peft.utils import ModulesToSaveWrapper
    from safetensors.torch import load_file

    file = Path(info.adapter_dir) / "adapter_model.safetensors"
    peft_model = group.peft_model
    if not file.is_file() or not group.adapters:
        return False
    config = PeftConfig.from_pretrained(info.adapter_dir)
    reference = next((peft_model.peft_config[a] for a in group.adapters if a in peft_model.peft_config), None)
    if not isinstance(config, LoraConfig) or reference is None or _layout(config) != _layout(reference):
        return False
    if group.layout is None:
        modules = dict(peft_model.base_model.model.named_modules())
        group.layout = (
            {k: m for k, m in modules.items() if isinstance(m, LoraLayer)},
            {k: m for k, m in modules.items() if isinstance(m, ModulesToSaveWrapper)},
        )
    layers, heads = group.layout
    lora: dict[str, dict[str, torch.Tensor]] = {}
    saved: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in load_file(str(file)).items():
        if not key.startswith(_STATE_PREFIX):
            return False
        rest = key[len(_STATE_PREFIX) :]
        module, _, tail = rest.rpartition(".lora_")
        if module in layers and tail in ("A.weight", "B.weight"):
            lora.setdefault(module, {})[tail[0]] = tensor
            continue
        head = next((h for h in heads if rest.startswith(h + ".")), None)
        if head is None:
            return False
        saved.setdefault(head, {})[rest[len(head) + 1 :]] = tensor
    if set(lora) != set(layers) or set(saved) != set(heads) or any(len(ab) != 2 for ab in lora.values()):
        return False
    if (
        config.rank_pattern
        or config.alpha_pattern
        or any(ab["A"].shape[0] != config.r for ab in lora.values())
    ):
        return False
    config.inference_mode = True
    config.init_lora_weights = False  # the saved weights overwrite them
    peft_model.peft_config[adapter_name] = config
    try:
        with torch.no_grad():
            for module, layer in layers.items():
                layer.update_layer(
                    adapter_name, config.r, config.lora_alpha, config=config, target_name=module
                )
                for part, weights in (("A", layer.lora_A), ("B", layer.lora_B)):
                    weights[adapter_name].weight.copy_(lora[module][part])
                    weights[adapter_name].weight.requires_grad_(False)
                # New modules start in training mode: a dropout there would make answers random.
                for new in (layer.lora_dropout, layer.lora_A, layer.lora_B):
                    new[adapter_name].eval()
            for head, state in saved.items():
                heads[head].update(adapter_name)
                heads[head].modules_to_save[adapter_name].load_state_dict(state, strict=True)
                heads[head].modules_to_save[adapter_name].requires_grad_(False).eval()
    except Exception:
        peft_model.delete_adapter(adapter_name)
        raise
    return True


def attach_adapter(group: BaseGroup, info: ArtifactInfo, adapter_name: str) -> None:
    header = _safetensors_header(Path(info.adapter_dir) / "adapter_model.safetensors")
    # peft's autocast only lifts fp16/bf16 adapter weights to fp32; for fp32 weights (what the engine
    # saves) it is a pass over every parameter of the shared model, paid on each cold attach.
    half = header is None or any(
        t.get("dtype") in ("F16", "BF16") for k, t in header.items() if k != "__metadata__"
    )
    with group.lock, quiet_transformers():
        if half or not _fast_attach(group, info, adapter_name):
            # Not trainable: load_adapter leaves the model in eval mode itself.
            group.peft_model.load_adapter(
                info.adapter_dir, adapter_name=adapter_name, autocast_adapter_dtype=half
            )
            group.layout = None  # it may have wrapped other modules
        group.adapters.add(adapter_name)
        group.active = None


def adapter_bytes(group: BaseGroup, adapter_name: str, adapter_dir: str | None = None) -> int:
    """The adapter's weights in memory: its safetensors file's tensors (read from the file's header;
    the file holds exactly the adapter's LoRA and head weights), else a walk over the parameters."""
    header = _safetensors_header(Path(adapter_dir) / "adapter_model.safetensors") if adapter_dir else None
    if header is not None:
        return sum(
            t["data_offsets"][1] - t["data_offsets"][0] for k, t in header.items() if k != "__metadata__"
        )
    total = 0
    for name, p in group.peft_model.named_parameters():
        parts = name.split(".")
        if adapter_name in parts:
            total += p.numel() * p.element_size()
    return total


def _safetensors_header(path) -> dict | None:
    import json
    import struct

    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            return json.loads(f.read(size))
    except (OSError, ValueError, struct.error):
        return None


def detach_adapter(group: BaseGroup, adapter_name: str) -> None:
    with group.lock:
        group.peft_model.delete_adapter(adapter_name)
        group.adapters.discard(adapter_name)
        group.active = None


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
