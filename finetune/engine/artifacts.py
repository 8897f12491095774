"""Final artifacts in Hugging Face format, plus the files the platform and users read next to them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import modeling
from .vocabulary import Method, Task

ENGINE_VERSION = "1.0"
_TASK_TAG = {
    Task.CLASSIFICATION: "text-classification",
    Task.MULTILABEL_CLASSIFICATION: "text-classification",
    Task.CHAT_SFT: "text-generation",
}


def label_map(labels: list[str], task: str) -> dict[str, Any]:
    return {
        "task": task,
        "labels": list(labels),
        "label2id": {label: i for i, label in enumerate(labels)},
        "id2label": {str(i): label for i, label in enumerate(labels)},
        "problem_type": {
            Task.CLASSIFICATION: "single_label_classification",
            Task.MULTILABEL_CLASSIFICATION: "multi_label_classification",
        }.get(task),
    }


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def export(
    plan: Any, model: nn.Module, metrics: dict[str, Any], resolved_spec: dict[str, Any], reporter: Any
) -> dict[str, Any]:
    """Write everything at output_dir's root. Returns the manifest (engine.json)."""
    out = Path(plan.spec.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = plan.spec
    is_adapter = spec.method != Method.FULL
    merged = False
    with modeling.quiet_transformers():
        if is_adapter:
            # peft records whatever path the base was loaded from; artifacts must name the portable id instead.
            for cfg in model.peft_config.values():  # type: ignore[attr-defined]
                cfg.base_model_name_or_path = plan.base_name
            adapter_dir = out / "adapter" if spec.hyperparameters.merge_adapter else out
            model.save_pretrained(str(adapter_dir), safe_serialization=True)  # type: ignore[attr-defined]
            if spec.hyperparameters.merge_adapter:
                _merge(plan, adapter_dir, out)
                merged = True
        else:
            model.config.name_or_path = plan.base_name  # type: ignore[attr-defined]
            model.save_pretrained(str(out), safe_serialization=True)  # type: ignore[attr-defined]
        plan.tokenizer.save_pretrained(str(out))
    manifest = {
        "engine_version": ENGINE_VERSION,
        "format": "adapter" if is_adapter else "full",
        "merged": merged,
        "method": spec.method,
        "task": spec.task,
        "base_model": plan.base_name,
        "num_labels": len(plan.labels),
        "dataset_hash": plan.dataset_hash,
        "target_modules": resolved_spec["hyperparameters"].get("target_modules"),
    }
    _write_json(out / "engine.json", manifest)
    _write_json(out / "label_map.json", label_map(plan.labels, spec.task))
    _write_json(out / "metrics.json", metrics)
    _write_json(out / "spec.json", resolved_spec)
    (out / "README.md").write_text(model_card(plan, metrics, resolved_spec, manifest), encoding="utf-8")
    # The folder is this machine's business: the caller knows where it put output_dir.
    reporter.on_log(
        "info",
        "artifacts written: model, tokenizer, engine.json, label_map.json, metrics.json, spec.json",
        code="artifacts_written",
        params={},
    )
    return manifest


def _merge(plan: Any, adapter_dir: Path, out: Path) -> None:
    """Reload the base unquantized and fold the adapter in, so QLoRA merges are as exact as LoRA ones."""
    from peft import PeftModel

    dtype = torch.float32 if plan.spec.method != Method.QLORA else torch.bfloat16
    base = modeling.load_pretrained(plan.base_path, plan.spec.task, plan.labels, plan.tokenizer, None, dtype)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config.name_or_path = plan.base_name
    merged.save_pretrained(str(out), safe_serialization=True)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def _metric_rows(metrics: dict[str, Any]) -> list[str]:
    final = metrics.get("final") or {}
    base = (metrics.get("baseline") or {}).get("base_model") or {}
    majority = (metrics.get("baseline") or {}).get("majority_class") or {}
    rows = []
    for key, value in final.items():
        if not isinstance(value, (int, float)) or key in ("step", "epoch"):
            continue
        bare = key.removeprefix("valid_")
        before = base.get(key)
        maj = majority.get(bare)
        gain = "" if before is None else _fmt(value - before)
        rows.append(
            f"| {key} | {_fmt(value)} | {'' if before is None else _fmt(before)} | {'' if maj is None else _fmt(maj)} | {gain} |"
        )
    return rows


def model_card(plan: Any, metrics: dict[str, Any], resolved: dict[str, Any], manifest: dict[str, Any]) -> str:
    spec = plan.spec
    hp = resolved["hyperparameters"]
    task_tag = _TASK_TAG[spec.task]
    lib = "peft" if manifest["format"] == "adapter" and not manifest["merged"] else "transformers"
    lines = [
        "---",
        f"library_name: {lib}",
        f"base_model: {plan.base_name}",
        f"pipeline_tag: {task_tag}",
        f"tags: [tuneforge, {spec.method}, {spec.task}]",
        "---",
        "",
        f"# {plan.base_name} fine-tuned for {spec.task.replace('_', ' ')} ({spec.method})",
        "",
        "Produced by the Tuneforge fine-tuning engine.",
        "",
        "## Base model and data",
        "",
        f"- Base model: `{plan.base_name}`",
        f"- Method: `{spec.method}`" + (" (merged into the base weights)" if manifest["merged"] else ""),
        f"- Dataset hash: `{plan.dataset_hash}`",
        f"- Training rows: {len(plan.train)}"
        + (f" (including {plan.n_replay} replayed from the earlier version)" if plan.n_replay else ""),
        f"- Validation rows: {len(plan.valid) if plan.valid is not None else 0}",
    ]
    if plan.labels:
        lines.append(f"- Labels ({len(plan.labels)}): " + ", ".join(f"`{label}`" for label in plan.labels))
    if spec.init_from:
        lines.append("- Continued from an earlier model version (continual learning)")
    lines += ["", "## Hyperparameters", "", "| name | value |", "|---|---|"]
    for k, v in hp.items():
        lines.append(f"| {k} | {_fmt(v)} |")
    lines += [f"| seed | {spec.seed} |", f"| steps | {metrics.get('train', {}).get('steps')} |", ""]
    search = metrics.get("search") or {}
    if search.get("winner"):
        w = search["winner"]
        lines += [
            f"The learning rate and method were chosen by a search ({len(search['trials'])} trial runs on "
            f"{search['train_rows']} training rows, {search['seconds']:.0f} s of a {search['budget_minutes']:g}-minute "
            f"budget): trial {w['trial']} ({w['method']}, learning rate {_fmt(w['learning_rate'])}) had the best "
            f"{w['metric']} ({_fmt(w['value'])}).",
            "",
        ]
    lines += _card_metrics(metrics)
    lines += ["", "## How to load", "", "```python", *_load_snippet(plan, manifest), "```", ""]
    lines += _card_use_and_limits(plan, hp)
    return "\n".join(lines) + "\n"


def _card_metrics(metrics: dict[str, Any]) -> list[str]:
    """The model card's metrics section: held-out scores against the baselines, and forgetting."""
    lines: list[str] = []
    lines += ["## Metrics", ""]
    rows = _metric_rows(metrics)
    if rows:
        lines += [
            "Validation metrics after training, against the base model before tuning and the majority-class baseline.",
            "",
            "| metric | fine-tuned | base model (before) | majority class | gain over base |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    else:
        lines += ["No validation set was given, so there are no held-out metrics.", ""]
    kept = metrics.get("kept")
    if kept:
        lines += [_kept_sentence(kept), ""]
    train = metrics.get("train", {})
    lines.append(
        f"Final training loss: {_fmt(train.get('final_train_loss'))}; trained tokens: {train.get('trained_tokens')}."
    )
    forgetting = metrics.get("forgetting")
    if forgetting:
        lines += [
            "",
            "### Earlier validation set (forgetting)",
            "",
            "| metric | before | after | change |",
            "|---|---|---|---|",
        ]
        for k, v in forgetting.items():
            lines.append(f"| {k} | {_fmt(v['before'])} | {_fmt(v['after'])} | {_fmt(v['change'])} |")
    return lines


def _kept_sentence(kept: dict[str, Any]) -> str:
    """Which weights these are: the best evaluation's, or the last step's when it was the best."""
    # Patience that runs out on the last planned step stopped nothing: every planned step ran.
    stopped_early = kept.get("stopped_early") and kept.get("last_step") != kept.get("planned_steps")
    stop = " Training stopped early: the metric had stopped improving." if stopped_early else ""
    if kept["reason"] == "last":
        return f"These are the weights of the last step ({kept['step']}), {kept['metric']} {_fmt(kept['value'])}.{stop}"
    if kept["step"] == kept["last_step"]:
        return (
            f"These are the weights of the last step ({kept['step']}), which also had the best "
            f"{kept['metric']} ({_fmt(kept['value'])}).{stop}"
        )
    return (
        f"These are the weights of step {kept['step']} of {kept['last_step']}: the evaluation with the best "
        f"{kept['metric']} ({_fmt(kept['value'])}); no later evaluation beat it, so later weights were not exported.{stop}"
    )


def _card_use_and_limits(plan: Any, hp: dict[str, Any]) -> list[str]:
    spec = plan.spec
    lines = [
        "## Intended use",
        "",
        (
            f"Classifying short texts into the {len(plan.labels)} labels above, for data like the training set."
            if spec.task != Task.CHAT_SFT
            else "Answering in the style and domain of the training conversations."
        ),
        "",
        "## Limits",
        "",
        "- Quality was measured only on the validation data described above; other domains, languages or "
        "label definitions may score much lower.",
        f"- Inputs longer than {hp['max_length']} tokens were truncated in training.",
        "- The model inherits the biases and licence terms of its base model and of the training data.",
    ]
    if spec.task != Task.CHAT_SFT:
        lines.append(
            "- It always answers with one of the known labels, even for unrelated input; check confidence scores."
        )
    else:
        lines.append("- Generated text can be wrong or fabricated; do not rely on it without review.")
    return lines


def _load_snippet(plan: Any, manifest: dict[str, Any]) -> list[str]:
    """Loading code that needs no model hub: the downloaded folder, and for an adapter the base model
    from a local folder (the path it was trained from)."""
    cls = "AutoModelForCausalLM" if plan.spec.task == Task.CHAT_SFT else "AutoModelForSequenceClassification"
    offline = [
        "import os",
        'os.environ["HF_HUB_OFFLINE"] = "1"  # local folders only, no download from the model hub',
        "",
    ]
    if manifest["format"] == "full" or manifest["merged"]:
        return [
            *offline,
            f"from transformers import AutoTokenizer, {cls}",
            "model = " + cls + '.from_pretrained("path/to/the/downloaded/folder")',
            'tokenizer = AutoTokenizer.from_pretrained("path/to/the/downloaded/folder")',
        ]
    lines = [
        *offline,
        "import json",
        "from peft import PeftModel",
        f"from transformers import AutoTokenizer, {cls}",
        'lm = json.load(open("path/to/the/downloaded/folder/label_map.json"))',
    ]
    if plan.spec.task == Task.CHAT_SFT:
        lines.append(f'base = {cls}.from_pretrained("{plan.base_name}")  # a local copy of the base model')
    else:
        lines.append(
            f'base = {cls}.from_pretrained("{plan.base_name}", num_labels=len(lm["labels"]), '
            'id2label=dict(enumerate(lm["labels"])), label2id=lm["label2id"], problem_type=lm["problem_type"])'
        )
    lines += [
        'model = PeftModel.from_pretrained(base, "path/to/the/downloaded/folder")',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/the/downloaded/folder")',
    ]
    return lines


def remove_stale(output_dir: str | Path) -> None:
    """A fresh (not resumed) run owns its output dir: old checkpoints would be rotated in with the new ones."""
    root = Path(output_dir) / "checkpoints"
    if root.is_dir():
        shutil.rmtree(root)
