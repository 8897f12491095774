"""`python -m finetune.engine train spec.json [--resume [CHECKPOINT]]` and `... validate spec.json`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .errors import SpecError
from .reporting import CANCEL, CONTINUE, PAUSE, NullReporter, Progress


class ConsoleReporter(NullReporter):
    """A tqdm progress bar plus one line per log, eval and checkpoint. First Ctrl-C pauses, second cancels."""

    def __init__(self, quiet: bool = False) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.bar: Any = None
        self.quiet = quiet
        self.interrupts = 0
        self.last_loss: float | None = None

    def install_signal_handler(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            self.interrupts += 1
            self._write(
                "interrupt: writing a checkpoint and pausing (press Ctrl-C again to cancel)"
                if self.interrupts == 1
                else "cancelling"
            )

        signal.signal(signal.SIGINT, handler)

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def on_log(self, level: str, message: str, *, code: str = "", params: dict | None = None) -> None:
        if not self.quiet or level != "info":
            self._write(f"[{level}] {message}")

    def on_step(self, metrics: dict) -> None:
        self.last_loss = metrics.get("train_loss")

    def on_eval(self, metrics: dict) -> None:
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k not in ("epoch",)}
        self._write(
            "[eval] "
            + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
        )

    def on_progress(self, progress: Progress) -> None:
        if self.bar is None:
            self.bar = self._tqdm(
                total=progress.total_steps,
                initial=progress.step - 1,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
            )
        self.bar.update(progress.step - self.bar.n)
        post = {
            "samples/s": f"{progress.samples_per_second:.1f}",
            "tok/s": f"{progress.tokens_per_second:.0f}",
        }
        if self.last_loss is not None:
            post["loss"] = f"{self.last_loss:.4f}"
        self.bar.set_postfix(post, refresh=False)

    def on_checkpoint(self, *, step: int, path: str, metrics: dict) -> None:
        self._write(f"[checkpoint] step {step}: {path}")

    def on_trial(self, trial: dict) -> None:
        if trial["status"] == "running" or trial["winner"] or self.quiet:
            return
        value = trial["value"]
        shown = f"{trial['metric']}={value:.4g}" if isinstance(value, (int, float)) else "not scored"
        self._write(
            f"[trial {trial['trial']} rung {trial['rung']}] {trial['method']} lr={trial['learning_rate']:g} "
            f"{trial['steps']}/{trial['planned_steps']} steps: {shown} ({trial['status']})"
        )

    def control(self) -> str:
        return CONTINUE if self.interrupts == 0 else PAUSE if self.interrupts == 1 else CANCEL

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _load_spec(path: str) -> Any:
    from .spec import JobSpec

    p = Path(path)
    if not p.is_file():
        raise SpecError("spec", f"spec file not found: {path}", code="file_not_found")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SpecError("spec", f"{path} is not valid JSON: {e}", code="invalid_file") from None
    return JobSpec.from_dict(raw)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(
        prog="python -m finetune.engine", description="Tuneforge fine-tuning engine"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model from a JSON job spec")
    t.add_argument("spec", help="path to the job spec JSON")
    t.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="CHECKPOINT",
        help="resume from a checkpoint dir (default: the latest under output_dir/checkpoints)",
    )
    t.add_argument("--quiet", action="store_true", help="only warnings, evals and the result")
    v = sub.add_parser("validate", help="check a spec and print what the run would do, without training")
    v.add_argument("spec")
    args = parser.parse_args(argv)

    try:
        spec = _load_spec(args.spec)
        if args.command == "validate":
            from .planning import validate_spec

            print(json.dumps(validate_spec(spec), indent=2))
            return 0
        from .checkpoints import latest_checkpoint
        from .trainer import train

        resume = args.resume
        if resume == "latest":
            found = latest_checkpoint(spec.output_dir)
            if found is None:
                raise SpecError(
                    "resume_from",
                    f"no checkpoint under {spec.output_dir}/checkpoints to resume from",
                    code="invalid_checkpoint",
                )
            resume = str(found)
        if resume:
            print(f"resuming from {resume}", file=sys.stderr)  # on the console a local path is the point
        reporter = ConsoleReporter(quiet=args.quiet)
        reporter.install_signal_handler()
        try:
            result = train(spec, reporter, resume_from=resume)
        finally:
            reporter.close()
    except SpecError as e:
        print(f"error: {e.field}: {e.message} [{e.code}]", file=sys.stderr)
        return 2
    final = result.metrics.get("final") or {}
    summary = {
        "status": result.status,
        "output_dir": result.output_dir,
        "steps": result.steps,
        "trained_tokens": result.trained_tokens,
        "last_checkpoint": result.last_checkpoint,
        **{k: v for k, v in final.items() if isinstance(v, (int, float)) and k.startswith("valid_")},
    }
    if result.search and result.search.get("winner"):
        w = result.search["winner"]
        summary["search_winner"] = {k: w[k] for k in ("trial", "method", "learning_rate", "metric", "value")}
        print(
            f"search winner: trial {w['trial']} ({w['method']}, lr={w['learning_rate']:g}), "
            f"{w['metric']}={w['value']}",
            file=sys.stderr,
        )
    print(json.dumps(summary))
    if result.status == "paused":
        print(f"paused; continue with: python -m finetune.engine train {args.spec} --resume", file=sys.stderr)
    return 0 if result.status in ("succeeded", "paused") else 1
