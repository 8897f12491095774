"""Display labels for the codes the platform stores (methods, tasks, device classes, metric names,
dataset warnings). The database, the API and the logs keep the codes; pages translate them here,
at display time, so a Chinese page never shows `lora` or `valid_accuracy` untranslated."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext_lazy as _

register = template.Library()

LABELS: dict[str, dict[str, str]] = {
    "method": {
        "auto": _("Auto (chosen for the model and data)"),
        "full": _("Full fine-tuning"),
        "lora": _("LoRA"),
        "qlora": _("QLoRA (4-bit)"),
        "ia3": _("IA³"),
        "prompt_tuning": _("Prompt tuning"),
    },
    "task": {
        "classification": _("Classification"),
        "multilabel_classification": _("Multi-label classification"),
        "chat_sft": _("Chat (supervised fine-tuning)"),
    },
    "priority": {"low": _("low"), "normal": _("normal"), "high": _("high")},
    "device": {
        "cpu": _("CPU"),
        "gpu": _("Any GPU"),
        "h100": "NVIDIA H100",
        "h200": "NVIDIA H200",
        "a100": "NVIDIA A100",
        "l4": "NVIDIA L4",
    },
    "metric": {
        "loss": _("loss"),
        "train_loss": _("training loss"),
        "eval_loss": _("validation loss"),
        "valid_loss": _("validation loss"),
        "learning_rate": _("learning rate"),
        "grad_norm": _("gradient norm"),
        "accuracy": _("accuracy"),
        "valid_accuracy": _("validation accuracy"),
        "eval_accuracy": _("validation accuracy"),
        "f1": _("F1"),
        "f1_macro": _("macro F1"),
        "valid_f1_macro": _("validation macro F1"),
        "eval_f1_macro": _("validation macro F1"),
        "f1_micro": _("micro F1"),
        "valid_f1_micro": _("validation micro F1"),
        "eval_f1_micro": _("validation micro F1"),
        "precision": _("precision"),
        "recall": _("recall"),
        "perplexity": _("perplexity"),
        "valid_perplexity": _("validation perplexity"),
        "eval_perplexity": _("validation perplexity"),
        "exact_match": _("exact match"),
        "samples_per_second": _("samples per second"),
        "tokens_per_second": _("tokens per second"),
        "epoch": _("epoch"),
        "step": _("step"),
    },
    # Why a job failed or stopped (`FineTuneJob.error_code`); the detailed English message is on
    # the job page beside it.
    "error": {
        "out_of_memory": _("Out of memory"),
        "time_limit_exceeded": _("Time limit exceeded"),
        "training_error": _("Training error"),
        "worker_lost": _("Worker lost"),
        "device_unavailable": _("Device unavailable"),
        "invalid_value": _("Invalid setting"),
        "invalid_type": _("Invalid setting"),
        "invalid_batch_size": _("Invalid batch size"),
        "invalid_learning_rate": _("Invalid learning rate"),
        "invalid_max_length": _("Invalid maximum length"),
        "invalid_target_module": _("Invalid target modules"),
        "invalid_checkpoint": _("Invalid checkpoint"),
        "incompatible_checkpoint": _("Incompatible checkpoint"),
        "invalid_init": _("Invalid starting model"),
        "incompatible_init": _("Incompatible starting model"),
        "invalid_file": _("Invalid data file"),
        "file_not_found": _("File not found"),
        "no_rows": _("No usable rows"),
        "too_few_labels": _("Too few labels"),
        "unseen_labels": _("Labels missing from training"),
        "needs_validation": _("Validation data required"),
        "unknown_base_model": _("Unknown base model"),
        "unsupported_tokenizer": _("Unsupported tokenizer"),
        "unsupported_task": _("Unsupported task"),
        "unknown_task": _("Unknown task"),
        "unknown_method": _("Unknown method"),
        "unknown_field": _("Unknown setting"),
        "required": _("Missing setting"),
        "qlora_requires_cuda": _("QLoRA needs a CUDA GPU"),
        "missing_dependency": _("Missing library"),
        "precision_unavailable": _("Precision unavailable"),
    },
    # A dataset warning's headline by its code; the detailed English message stays beside it.
    "warning": {
        "class_imbalance": _("Classes are imbalanced"),
        "encoding": _("The file's encoding was converted"),
        "label_case_variants": _("Labels differ only in case"),
        "multiline_rows": _("Rows span several lines"),
        "no_validation": _("The validation split is empty"),
        "rare_labels": _("Some labels are rare"),
        "too_long": _("Rows are longer than the tokenizer's limit"),
        "trimmed_labels": _("Labels had surrounding spaces"),
        "unmapped_labels": _("Labels without a name"),
        "validation_only_labels": _("Labels only in the validation split"),
        "quoting": _("Quotes were read as ordinary characters"),
        "token_lengths_unchecked": _("Token lengths were not checked"),
        "duplicates": _("Duplicate rows"),
        "leakage": _("Rows in both training and validation"),
    },
}


@register.filter
def label(code, kind: str) -> str:
    """`{{ job.method|label:"method" }}` → "LoRA"; an unknown code is shown as it is (metric names
    with underscores read as words)."""
    if code is None or code == "":
        return ""
    known = LABELS.get(kind, {}).get(str(code))
    if known is not None:
        return known
    return str(code).replace("_", " ") if kind in ("metric", "error") else str(code)


def choices(kind: str, codes) -> list[tuple[str, str]]:
    """(code, translated label) pairs for a form's <select>."""
    return [(code, label(code, kind)) for code in codes]
