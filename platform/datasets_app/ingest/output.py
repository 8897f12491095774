"""The final files: the scratch rows copied by destination into training and validation JSONL, hashed
on the way; the rows that warnings list are picked up in the same pass."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from datasets_app.ingest.rows import Part


def write_splits(
    sources: list[tuple[Part, np.ndarray]], train_path: Path, val_path: Path, wanted: set[tuple[str, int]]
) -> tuple[str, str, int, int, dict[tuple[str, int], bytes]]:
    """Copies the scratch rows by flag (0 training, 1 validation, 2 dropped); returns both sha256s,
    both row counts and the raw rows named in `wanted` ((part role, row index) pairs)."""
    train_hash, val_hash = hashlib.sha256(), hashlib.sha256()
    n_train = n_val = 0
    picked: dict[tuple[str, int], bytes] = {}
    with open(train_path, "wb") as train_out, open(val_path, "wb") as val_out:
        for part, flags in sources:
            flag_bytes = flags.astype(np.uint8).tobytes()
            mine = sorted(i for role, i in wanted if role == part.role)
            offset = 0
            with open(part.path, "rb") as rows:
                while lines := rows.readlines(1 << 20):
                    while mine and mine[0] < offset + len(lines):
                        index = mine.pop(0)
                        picked[(part.role, index)] = lines[index - offset]
                    chunk = flag_bytes[offset : offset + len(lines)]
                    offset += len(lines)
                    if not chunk.strip(b"\x00"):
                        train_part, val_part = b"".join(lines), b""
                    else:
                        train_part = b"".join([line for line, f in zip(lines, chunk, strict=True) if f == 0])
                        val_part = b"".join([line for line, f in zip(lines, chunk, strict=True) if f == 1])
                    train_out.write(train_part)
                    train_hash.update(train_part)
                    val_out.write(val_part)
                    val_hash.update(val_part)
            n_train += int((flags == 0).sum())
            n_val += int((flags == 1).sum())
    return train_hash.hexdigest(), val_hash.hexdigest(), n_train, n_val, picked


def content_sha256(train_sha: str, validation_sha: str | None) -> str:
    """A version's identity: the sha256 of the two splits' digests (validation empty when absent)."""
    return hashlib.sha256(f"train:{train_sha}\nvalidation:{validation_sha or ''}\n".encode()).hexdigest()
