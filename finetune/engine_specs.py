"""The one place a job becomes an engine spec (`finetune.engine.JobSpec`), for the check at
submission on the web host and for the run on a worker."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from finetune.engine import JobSpec
from finetune.engine.vocabulary import Method
from finetune.models import BaseModel, FineTuneJob
from finetune.selectors import CPU_DEVICE_CLASS

# Precisions only a GPU has: the web host checking a GPU job cannot check them.
GPU_PRECISIONS = ("bf16", "fp16")


def engine_spec(
    *,
    base_model: BaseModel,
    dataset_sha256: str,
    task: str,
    method: str,
    hyperparameters: dict,
    seed: int,
    max_steps: int | None,
    device: str,
    train_file: Path,
    validation_file: Path | None,
    output_dir: Path,
    base_model_name: str | None = None,
) -> JobSpec:
    """Raises `SpecError` naming the field, like every engine check."""
    return JobSpec.from_dict(
        {
            "base_model": base_model.source,
            "base_model_name": base_model_name,
            "task": task,
            "method": method,
            "train_file": str(train_file),
            "validation_file": str(validation_file) if validation_file else None,
            "output_dir": str(output_dir),
            "hyperparameters": hyperparameters,
            "seed": seed,
            "device": device,
            "dataset_hash": dataset_sha256,
            "max_steps": max_steps,
            "cache_dir": str(Path(settings.TUNEFORGE_CACHE_DIR) / "engine"),
        }
    )


def engine_spec_for_job(
    job: FineTuneJob, *, train_file: Path, validation_file: Path | None, output_dir: Path
) -> JobSpec:
    """The spec a worker trains: the job as submitted, on this worker's device."""
    return engine_spec(
        base_model=job.base_model,
        base_model_name=job.base_model.name,
        dataset_sha256=job.dataset_version.sha256,
        task=job.task,
        method=job.method,
        hyperparameters=job.hyperparameters,
        seed=job.seed,
        max_steps=job.max_steps,
        device="cpu" if job.device_class == CPU_DEVICE_CLASS else "cuda",
        train_file=train_file,
        validation_file=validation_file,
        output_dir=output_dir,
    )


def engine_spec_for_submission(
    *,
    base_model: BaseModel,
    dataset_sha256: str,
    task: str,
    method: str,
    hyperparameters: dict,
    seed: int,
    max_steps: int | None,
    device_class: str,
    train_file: Path,
    validation_file: Path | None,
    output_dir: Path,
) -> JobSpec:
    """The spec used to check a submission on the web host, which may have no GPU: GPU-only
    choices (bf16/fp16 precision and QLoRA) are checked again by the worker that runs the job."""
    hyperparameters = dict(hyperparameters)
    if device_class != CPU_DEVICE_CLASS:
        if hyperparameters.get("precision") in GPU_PRECISIONS:
            hyperparameters["precision"] = "auto"
        method = Method.LORA if method == Method.QLORA else method
    return engine_spec(
        base_model=base_model,
        dataset_sha256=dataset_sha256,
        task=task,
        method=method,
        hyperparameters=hyperparameters,
        seed=seed,
        max_steps=max_steps,
        device="cpu",
        train_file=train_file,
        validation_file=validation_file,
        output_dir=output_dir,
    )
