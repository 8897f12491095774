"""The optional budgeted search (`hyperparameters.search`): successive halving over learning rate and
method on part of the training data, before the full run trains the winner (docs/engine.md, "Search").

Every candidate trains a short run on the same seeded subset and is scored on the validation data with
the early-stopping metric; the better half goes on with twice the steps, until one is left. Trials
restart from the base weights at each rung (no model is kept in memory between trials), so the search
costs one model's memory at a time. The budget is a wall-clock deadline checked between steps.

The trials themselves are trained by a callable that the trainer passes in (`TrialTrainer`), so this
module needs no part of the training loop.
"""

from __future__ import annotations

import copy
import math
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from . import autoconf, data
from .halving import surviving_trials
from .metrics import metric_direction, normalize_metric_name
from .planning import Plan, prepare
from .reporting import CANCEL, CONTINUE, NullReporter, Reporter
from .spec import AUTO, JobSpec
from .vocabulary import Method

# Learning-rate multiples of the method's "auto" rate, in the order trials take them.
LR_MULTIPLIERS = (1.0, 0.5, 2.0, 0.25, 4.0, 0.125, 8.0, 1 / 16)
# Training rows a trial sees: a quarter of the data, at least this many (all of them below it).
SEARCH_FRACTION = 0.25
SEARCH_MIN_ROWS = 256
# Validation rows trials are scored on (the full run still uses all of them).
SEARCH_MAX_VALID_ROWS = 2000
# Steps of the first rung: a tenth of the full run's, within these bounds; each rung doubles them.
FIRST_RUNG_MIN_STEPS = 20
FIRST_RUNG_MAX_STEPS = 300
# Full fine-tuning is searched only below this size: AdamW states for billions of weights do not fit.
FULL_SEARCH_MAX_PARAMETERS = 1e9

# Trial statuses as reported (and stored by the platform).
RUNNING, COMPLETED, BUDGET, PRUNED, SKIPPED, CANCELLED = (
    "running",
    "completed",
    "budget_exhausted",
    "pruned",
    "skipped",
    "cancelled",
)

# (plan, reporter) -> (loop status, a function returning the trial's final validation metrics)
TrialTrainer = Callable[[Plan, Reporter], tuple[str, Callable[[], dict[str, Any]]]]


@dataclass
class Candidate:
    index: int
    method: str  # the concrete method ("full", "lora", ...)
    spec_method: str  # what the run's spec says: "auto" when it is "auto"'s own pick
    learning_rate: float
    auto_learning_rate: float  # what "auto" gives this method: the rate is reported as a multiple of it


@dataclass
class SearchOutcome:
    status: str  # "succeeded" | "cancelled" | "paused"
    summary: dict[str, Any] = field(default_factory=dict)  # winner, trials (no curves), budget


class _TrialReporter(NullReporter):
    """Collects one trial's curve; passes cancel/pause through and stops the trial at the deadline
    (after at least one step, so a search always has something to choose from)."""

    def __init__(
        self,
        outer: Reporter,
        deadline: float,
        *,
        must_step: bool,
        while_running: Callable[[_TrialReporter], None] | None = None,
    ) -> None:
        self.outer = outer
        self.deadline = deadline
        self.must_step = must_step
        self.while_running = while_running
        self.curve: list[dict[str, Any]] = []
        self.eval_curve: list[dict[str, Any]] = []
        self.budget_exhausted = False
        self.stopped_by: str | None = None

    def on_step(self, metrics: dict) -> None:
        self.curve.append({"step": metrics["step"], "train_loss": metrics.get("train_loss")})

    def on_eval(self, metrics: dict) -> None:
        self.eval_curve.append(
            {
                k: v
                for k, v in metrics.items()
                if k == "step" or (isinstance(v, float) and k.startswith("valid_"))
            }
        )
        if self.while_running is not None:
            self.while_running(self)

    def control(self) -> str:
        outer = self.outer.control()
        if outer != CONTINUE:
            self.stopped_by = outer
            return outer
        if time.monotonic() >= self.deadline and (self.curve or not self.must_step):
            self.budget_exhausted = True
            return CANCEL
        return CONTINUE


class _PlanningReporter(NullReporter):
    """Planning the trials repeats what the full run's plan will log; only warnings go through."""

    def __init__(self, outer: Reporter) -> None:
        self.outer = outer

    def on_log(self, level: str, message: str, *, code: str = "", params: dict | None = None) -> None:
        if level != "info":
            self.outer.on_log(level, message, code=code, params=params)


def search_methods(spec: JobSpec, plan: Plan) -> list[tuple[str, str]]:
    """(concrete method, spec method) pairs searched: the given method only, or with method "auto"
    its pick and the other of full/LoRA (full only below FULL_SEARCH_MAX_PARAMETERS; a continued
    model keeps its own method)."""
    pick = plan.spec.method
    if spec.method != AUTO:
        return [(pick, pick)]
    out = [(pick, AUTO)]
    if spec.init_from is None:
        other = Method.LORA if pick == Method.FULL else Method.FULL
        if other != Method.FULL or plan.n_params < FULL_SEARCH_MAX_PARAMETERS:
            out.append((other, other))
    return out


def make_candidates(
    spec: JobSpec, methods: list[tuple[str, str]], n_params: int, trials: int
) -> list[Candidate]:
    """Trials alternate methods; rates are multiples of each method's "auto" rate (1x, 0.5x, 2x, ...),
    or the listed `learning_rates` in order."""
    rates = spec.hyperparameters.search.get("learning_rates")
    out: list[Candidate] = []
    for i in range(trials):
        method, spec_method = methods[i % len(methods)]
        k = i // len(methods)
        base = autoconf.auto_learning_rate(method, spec.task, n_params)
        lr = float(rates[k % len(rates)]) if rates else base * LR_MULTIPLIERS[k % len(LR_MULTIPLIERS)]
        out.append(
            Candidate(
                index=i,
                method=method,
                spec_method=spec_method,
                learning_rate=float(f"{lr:.6g}"),
                auto_learning_rate=base,
            )
        )
    return out


def first_rung_steps(full_run_steps: int) -> int:
    return int(min(FIRST_RUNG_MAX_STEPS, max(FIRST_RUNG_MIN_STEPS, math.ceil(full_run_steps / 10))))


def _subset(split: data.Split, n: int, seed: int) -> tuple[data.Split, int]:
    if len(split) <= n:
        return split, len(split)
    idx = sorted(random.Random(seed).sample(range(len(split)), n))
    return data.Split(split.encoded.select(idx), [split.targets[i] for i in idx]), n


def _trial_spec(spec: JobSpec, *, method: str, learning_rate: Any, output_dir: str) -> JobSpec:
    hp = replace(
        copy.deepcopy(spec.hyperparameters),
        search=None,
        learning_rate=learning_rate,
        early_stopping_patience=None,
        checkpoint_every_minutes=None,
        save_every_steps=None,
        eval_every_steps=None,
    )
    return replace(spec, method=method, hyperparameters=hp, output_dir=output_dir)


def spec_for_winner(spec: JobSpec, winner: dict[str, Any]) -> JobSpec:
    """The full run's spec: the winner's method and learning rate, no search."""
    hp = replace(copy.deepcopy(spec.hyperparameters), search=None, learning_rate=winner["learning_rate"])
    return replace(spec, method=winner["spec_method"], hyperparameters=hp)


def _rank_key(metric: str) -> Callable[[dict[str, Any]], tuple]:
    sign = 1.0 if metric_direction(metric) == "min" else -1.0

    def key(trial: dict[str, Any]) -> tuple:
        value = trial.get("value")
        loss = (trial.get("metrics") or {}).get("valid_loss")
        bad = value is None or not math.isfinite(value)
        return (
            bad,
            0.0 if bad else sign * value,
            math.inf if loss is None or not math.isfinite(loss) else loss,
            trial["trial"],
        )

    return key


def choose_winner(rows: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The best trial of the deepest rung in which any trial completed; trials cut by the budget
    count only when none completed at all. Ties go to the lower validation loss, then the earlier trial."""
    completed = [r for r in rows if r["status"] in (COMPLETED, PRUNED)]
    pool = completed or [r for r in rows if r["status"] == BUDGET]
    deepest = max(r["rung"] for r in pool)
    return min((r for r in pool if r["rung"] == deepest), key=_rank_key(metric))


class _Search:
    def __init__(self, spec: JobSpec, reporter: Reporter, train_trial: TrialTrainer) -> None:
        self.spec = spec
        self.reporter = reporter
        self.train_trial = train_trial
        self.config = spec.hyperparameters.search
        self.started = time.monotonic()
        self.deadline = self.started + 60.0 * float(self.config["budget_minutes"])
        self.rows: list[dict[str, Any]] = []

    def emit(self, row: dict[str, Any]) -> None:
        on_trial = getattr(self.reporter, "on_trial", None)
        if on_trial is not None:
            on_trial(dict(row))

    def plan_candidates(self, workdir: str) -> None:
        spec = self.spec
        quiet = _PlanningReporter(self.reporter)
        # The full run's plan fixes what "auto" picks and how many steps the run makes.
        full = prepare(_trial_spec(spec, method=spec.method, learning_rate=AUTO, output_dir=workdir), quiet)
        self.metric = normalize_metric_name(full.hp.early_stopping_metric)
        self.methods = search_methods(spec, full)
        self.candidates = make_candidates(spec, self.methods, full.n_params, self.config["trials"])
        self.first_steps = first_rung_steps(full.total_steps)
        n_rows = min(len(full.train), max(SEARCH_MIN_ROWS, math.ceil(len(full.train) * SEARCH_FRACTION)))
        self.plans: dict[str, Plan] = {}
        for method, spec_method in self.methods:
            plan = (
                full
                if spec_method == spec.method
                else prepare(
                    _trial_spec(spec, method=spec_method, learning_rate=AUTO, output_dir=workdir), quiet
                )
            )
            train, self.n_rows = _subset(plan.train, n_rows, spec.seed)
            valid, _ = _subset(plan.valid, SEARCH_MAX_VALID_ROWS, spec.seed + 1)
            self.plans[method] = replace(plan, train=train, valid=valid, previous_valid=None)

    def trial_plan(self, c: Candidate, steps: int) -> Plan:
        plan = self.plans[c.method]
        hp = replace(
            copy.deepcopy(plan.hp),
            learning_rate=c.learning_rate,
            eval_every_steps=max(1, steps // 4),
        )
        steps_per_epoch = math.ceil(
            math.ceil(len(plan.train) / hp.batch_size) / hp.gradient_accumulation_steps
        )
        return replace(
            plan,
            spec=replace(plan.spec, max_steps=steps),
            hp=hp,
            steps_per_epoch=steps_per_epoch,
            total_steps=steps,
        )

    def row(self, c: Candidate, rung: int, steps: int, status: str) -> dict[str, Any]:
        return {
            "trial": c.index,
            "rung": rung,
            "method": c.method,
            "spec_method": c.spec_method,
            "learning_rate": c.learning_rate,
            "auto_learning_rate": c.auto_learning_rate,
            "planned_steps": steps,
            "steps": 0,
            "train_rows": self.n_rows,
            "status": status,
            "metric": self.metric,
            "value": None,
            "metrics": {},
            "curve": [],
            "eval_curve": [],
            "seconds": 0.0,
            "winner": False,
        }

    def run_trial(self, c: Candidate, rung: int, steps: int) -> tuple[dict[str, Any], str | None]:
        """Train one trial; returns its row and the outer control ("cancel"/"pause") that stopped it."""
        row = self.row(c, rung, steps, RUNNING)
        self.emit(row)
        t0 = time.monotonic()

        def record_progress(rep: _TrialReporter) -> None:
            row["steps"] = rep.curve[-1]["step"] if rep.curve else 0
            row["curve"], row["eval_curve"] = list(rep.curve), list(rep.eval_curve)
            row["seconds"] = round(time.monotonic() - t0, 3)

        def report_running(rep: _TrialReporter) -> None:
            # At each of the trial's evaluations, so the job page's trial table and search progress
            # move within a trial, not only when it ends.
            record_progress(rep)
            self.emit(row)

        rep = _TrialReporter(
            self.reporter,
            self.deadline,
            must_step=not any(r["status"] != SKIPPED for r in self.rows),
            while_running=report_running,
        )
        status, evaluate = self.train_trial(self.trial_plan(c, steps), rep)
        if rep.stopped_by is not None:
            row["status"] = CANCELLED
        else:
            metrics = evaluate()
            row["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            row["value"] = metrics.get(self.metric)
            row["status"] = BUDGET if rep.budget_exhausted or status != "succeeded" else COMPLETED
        record_progress(rep)  # after the final evaluation, so `seconds` includes it
        self.rows.append(row)
        self.emit(row)
        return row, rep.stopped_by

    def skip(self, c: Candidate, rung: int, steps: int) -> None:
        row = self.row(c, rung, steps, SKIPPED)
        self.rows.append(row)
        self.emit(row)

    def run(self) -> SearchOutcome:
        trials = self.config["trials"]
        self.reporter.on_log(
            "info",
            f"search: {trials} trials within {self.config['budget_minutes']:g} minutes",
            code="search_started",
            params={"trials": trials, "budget_minutes": self.config["budget_minutes"]},
        )
        with tempfile.TemporaryDirectory(prefix="search-") as workdir:
            self.plan_candidates(workdir)
            alive = list(self.candidates)
            rung = 0
            while True:
                steps = self.first_steps * 2**rung
                finished: list[dict[str, Any]] = []
                for c in alive:
                    out_of_time = time.monotonic() >= self.deadline
                    if out_of_time and any(r["status"] != SKIPPED for r in self.rows):
                        self.skip(c, rung, steps)
                        continue
                    row, stopped_by = self.run_trial(c, rung, steps)
                    if stopped_by is not None:
                        return SearchOutcome(
                            status="paused" if stopped_by != CANCEL else "cancelled",
                            summary=self.summary(None),
                        )
                    finished.append(row)
                survivors = surviving_trials(len(alive))
                if (
                    survivors <= 1
                    or time.monotonic() >= self.deadline
                    or any(r["status"] == BUDGET for r in finished)
                ):
                    break
                ranked = sorted(finished, key=_rank_key(self.metric))
                for r in ranked[survivors:]:
                    r["status"] = PRUNED
                    self.emit(r)
                keep = {r["trial"] for r in ranked[:survivors]}
                alive = [c for c in alive if c.index in keep]
                rung += 1
        winner = choose_winner(self.rows, self.metric)
        winner["winner"] = True
        self.emit(winner)
        summary = self.summary(winner)
        self.reporter.on_log(
            "info",
            f"search winner: trial {winner['trial']} ({winner['method']}, lr={winner['learning_rate']:g}) with "
            f"{self.metric}={winner['value']} after {winner['steps']} steps; {len(self.rows)} trial runs in "
            f"{summary['seconds']:.0f} s",
            code="search_winner",
            params={
                "trial": winner["trial"],
                "method": winner["method"],
                "learning_rate": winner["learning_rate"],
                "metric": self.metric,
                "value": winner["value"],
                "steps": winner["steps"],
            },
        )
        return SearchOutcome(status="succeeded", summary=summary)

    def summary(self, winner: dict[str, Any] | None) -> dict[str, Any]:
        compact = ("trial", "rung", "method", "learning_rate", "steps", "status", "value", "seconds")
        return {
            "winner": None
            if winner is None
            else {
                k: winner[k]
                for k in (
                    "trial",
                    "rung",
                    "method",
                    "spec_method",
                    "learning_rate",
                    "metric",
                    "value",
                    "steps",
                )
            },
            "trials": [{k: r[k] for k in compact} for r in self.rows],
            "metric": self.metric,
            "budget_minutes": self.config["budget_minutes"],
            "seconds": round(time.monotonic() - self.started, 3),
            "budget_exhausted": any(r["status"] in (BUDGET, SKIPPED) for r in self.rows),
            "train_rows": self.n_rows,
            "first_rung_steps": self.first_steps,
        }


def run_search(spec: JobSpec, reporter: Reporter, *, train_trial: TrialTrainer) -> SearchOutcome:
    """Run the search of `spec.hyperparameters.search`; the caller trains the winner (spec_for_winner)."""
    return _Search(spec, reporter, train_trial).run()
