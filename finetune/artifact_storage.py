"""Moving files between a machine's local disk and the storage backend.

Web and workers share no disk: datasets go down from storage to a worker's work dir, checkpoints
and final artifacts go up. Everything goes through `default_storage` (a folder in development and
tests, an S3-compatible bucket in production), so any worker on any machine can pick a job up.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

CHUNK = 1 << 20


def storage_prefix_for_job(*, team_id: str, job_id: str) -> str:
    return f"teams/{team_id}/jobs/{job_id}"


def storage_prefix_for_model_version(*, team_id: str, version_id: str) -> str:
    return f"teams/{team_id}/models/{version_id}"


def upload_file(local_path: Path, name: str) -> int:
    """Store `local_path` under exactly `name` (replacing what was there) and return its size.

    Storage backends pick another name rather than overwrite; an artifact must keep its path, so an
    earlier copy (e.g. from an attempt that crashed mid-upload) is removed first.
    """
    if default_storage.exists(name):
        default_storage.delete(name)
    with open(local_path, "rb") as fh:
        saved = default_storage.save(name, File(fh, name=os.path.basename(name)))
    if saved != name:
        raise RuntimeError(f"storage stored {name!r} as {saved!r}; artifact paths must be stable")
    return local_path.stat().st_size


def upload_dir(local_dir: Path, prefix: str, *, exclude_top: tuple[str, ...] = ()) -> list[dict]:
    """Upload every file under `local_dir` to `prefix/<relative path>`; returns [{"path", "size"}]
    sorted by path. Top-level entries named in `exclude_top` are skipped (e.g. "checkpoints")."""
    files = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(local_dir).as_posix()
        if rel.split("/", 1)[0] in exclude_top:
            continue
        size = upload_file(path, f"{prefix}/{rel}")
        files.append({"path": rel, "size": size})
    return files


def download_file(name: str, dest: Path) -> Path:
    """Copy the stored file `name` to `dest` (written to a temporary name first, so a crash never
    leaves a truncated file that looks complete)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out, default_storage.open(name, "rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dest


def download_files(prefix: str, files: list[dict], dest_dir: Path) -> Path:
    """Recreate a stored folder (`files` as recorded at upload) under `dest_dir`."""
    for entry in files:
        download_file(f"{prefix}/{entry['path']}", dest_dir / entry["path"])
    return dest_dir


def delete_files(prefix: str, files: list[dict]) -> None:
    for entry in files:
        name = f"{prefix}/{entry['path']}"
        if default_storage.exists(name):
            default_storage.delete(name)


def dataset_local_files(version) -> tuple[Path, Path | None]:
    """Local copies of a dataset version's normalized training and validation JSONL.

    Cached by content hash under TUNEFORGE_CACHE_DIR (versions are immutable), so a worker
    downloads a dataset once however many jobs train on it.
    """
    folder = Path(settings.TUNEFORGE_CACHE_DIR) / "datasets" / version.sha256
    train = folder / "train.jsonl"
    if not train.exists():
        download_file(version.normalized_file.name, train)
    valid = None
    if version.validation_file:
        valid = folder / "valid.jsonl"
        if not valid.exists():
            download_file(version.validation_file.name, valid)
    return train, valid


def dataset_all_rows_file(version) -> Path:
    """One local JSONL with every row of a version (its training rows, then its validation rows).

    A version named as a job's separate validation file is evaluated on all of its rows, not only on
    the split its own upload held out.
    """
    train, valid = dataset_local_files(version)
    if valid is None:
        return train
    combined = train.parent / "all.jsonl"
    if not combined.exists():
        partial = combined.with_suffix(".part")
        with partial.open("wb") as out:
            for part in (train, valid):
                data = part.read_bytes()
                out.write(data)
                if data and not data.endswith(b"\n"):
                    out.write(b"\n")
        partial.replace(combined)  # atomic: concurrent jobs never read a half-written file
    return combined
