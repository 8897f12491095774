"""The budgeted search (hyperparameters.search): successive halving on tiny data, then the winner's run."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune.engine import RecordingReporter, SpecError, train
from finetune.engine.checkpoints import list_checkpoints, read_state
from finetune.engine.halving import planned_rungs
from finetune.engine.search import choose_winner
from finetune.engine.vocabulary import Method

# A rate far too small to move the weights cannot win, so the winner is decided by the two that learn.
RATES = [1e-9, 5e-3, 1e-2]


def _search_hp(budget_minutes: float = 30.0, **extra) -> dict:
    return {
        "learning_rate": "auto",
        "n_epochs": 1,
        "search": {"trials": 3, "budget_minutes": budget_minutes, "learning_rates": RATES},
        **extra,
    }


def _final_rows(rep: RecordingReporter) -> dict[tuple[int, int], dict]:
    """The last report of each (trial, rung)."""
    out: dict[tuple[int, int], dict] = {}
    for row in rep.trials:
        out[(row["trial"], row["rung"])] = row
    return out


def test_a_search_of_three_trials_picks_the_best_validation_metric_and_reports_all_three(make_spec):
    rep = RecordingReporter()
    res = train(make_spec(method=Method.FULL, hyperparameters=_search_hp()), rep)
    assert res.status == "succeeded"
    rows = _final_rows(rep)
    assert {t for t, _ in rows} == {0, 1, 2}
    first = [rows[(t, 0)] for t in range(3)]
    assert [r["learning_rate"] for r in first] == RATES
    for r in rows.values():
        assert r["status"] in ("completed", "pruned")
        assert r["steps"] == r["planned_steps"] and len(r["curve"]) == r["steps"]
        assert r["eval_curve"] and r["metric"] == "valid_accuracy" and r["value"] is not None
    # Halving: three trials at rung 0, the best two at rung 1 with twice the steps.
    assert sorted(rows) == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert [sum(1 for _, rung in rows if rung == r) for r in range(2)] == planned_rungs(3)
    assert rows[(1, 1)]["steps"] == 2 * rows[(1, 0)]["steps"]
    assert rows[(0, 0)]["status"] == "pruned"  # the rate that cannot learn
    deepest = [rows[(1, 1)], rows[(2, 1)]]
    best = max(deepest, key=lambda r: (r["value"], -r["metrics"]["valid_loss"], -r["trial"]))
    winners = [r for r in rows.values() if r["winner"]]
    assert [(w["trial"], w["rung"]) for w in winners] == [(best["trial"], 1)]
    # The full run trains the winner's rate on all the data and says so.
    assert res.search["winner"]["trial"] == best["trial"]
    assert res.resolved_spec["hyperparameters"]["learning_rate"] == best["learning_rate"]
    assert res.resolved_spec["hyperparameters"]["search"]["trials"] == 3
    assert rep.steps[0]["learning_rate"] <= best["learning_rate"]
    assert res.metrics["search"]["winner"]["learning_rate"] == best["learning_rate"]
    assert len(res.metrics["search"]["trials"]) == 5
    assert any(code == "search_winner" for code, _ in rep.log_codes)
    # Each trial is reported while it trains (at its evaluations), not only when it starts and ends.
    for key, row in rows.items():
        running = [r for r in rep.trials if (r["trial"], r["rung"]) == key and r["status"] == "running"]
        assert [r["steps"] for r in running][:2] == [0, row["planned_steps"] // 4], key
        assert len(running[1]["curve"]) == running[1]["steps"] and running[1]["eval_curve"]
    assert (Path(res.output_dir) / "model.safetensors").exists()
    card = (Path(res.output_dir) / "README.md").read_text()
    assert "were chosen by a search (5 trial runs" in card and f"trial {best['trial']} (full" in card


def test_a_tiny_budget_ends_the_search_early_and_still_trains_a_winner(make_spec):
    rep = RecordingReporter()
    # 0.06 s: the deadline passes during the first trial, which still makes its first step.
    res = train(make_spec(method=Method.FULL, hyperparameters=_search_hp(budget_minutes=0.001)), rep)
    assert res.status == "succeeded"
    rows = _final_rows(rep)
    assert rows[(0, 0)]["status"] == "budget_exhausted"
    assert 1 <= rows[(0, 0)]["steps"] < rows[(0, 0)]["planned_steps"]
    assert rows[(1, 0)]["status"] == rows[(2, 0)]["status"] == "skipped"
    assert rows[(0, 0)]["winner"] and res.search["winner"]["trial"] == 0
    assert res.search["budget_exhausted"] is True
    assert res.resolved_spec["hyperparameters"]["learning_rate"] == RATES[0]
    assert res.steps == 15  # the full run is not cut by the search's budget


@pytest.mark.parametrize(
    ("trials", "rungs"), [(2, [2]), (3, [3, 2]), (4, [4, 2]), (5, [5, 3, 2]), (16, [16, 8, 4, 2])]
)
def test_the_planned_rungs_halve_the_trials_until_one_would_be_left(trials, rungs):
    assert planned_rungs(trials) == rungs


def test_the_winner_is_the_best_completed_trial_of_the_deepest_rung():
    def row(trial, rung, status, value, loss=1.0):
        return {
            "trial": trial,
            "rung": rung,
            "status": status,
            "value": value,
            "metrics": {"valid_loss": loss},
        }

    rows = [
        row(0, 0, "pruned", 0.9),
        row(1, 0, "completed", 0.5),
        row(2, 0, "completed", 0.6),
        row(1, 1, "completed", 0.7, loss=0.4),
        row(2, 1, "completed", 0.7, loss=0.3),
        row(1, 2, "budget_exhausted", 0.99),
    ]
    assert choose_winner(rows, "valid_accuracy")["trial"] == 2  # tie on accuracy: lower loss
    assert choose_winner(rows, "valid_loss")["trial"] == 2
    only_cut = [row(0, 0, "budget_exhausted", 0.2), row(1, 0, "skipped", None)]
    assert choose_winner(only_cut, "valid_accuracy")["trial"] == 0


def test_cancel_during_the_search_stops_it_without_a_model(make_spec):
    class CancelInSecondTrial(RecordingReporter):
        def control(self) -> str:
            started = {(r["trial"], r["rung"]) for r in self.trials if r["status"] == "running"}
            return "cancel" if len(started) >= 2 else "continue"

    rep = CancelInSecondTrial()
    res = train(make_spec(method=Method.FULL, hyperparameters=_search_hp()), rep)
    assert res.status == "cancelled" and res.steps == 0
    rows = _final_rows(rep)
    assert rows[(0, 0)]["status"] == "completed" and rows[(1, 0)]["status"] == "cancelled"
    assert (2, 0) not in rows
    assert rep.steps == []  # the full run never started
    assert not (Path(res.output_dir) / "metrics.json").exists()
    assert not list_checkpoints(res.output_dir)


def test_a_run_resumed_after_its_search_does_not_search_again(make_spec):
    class PauseAfter(RecordingReporter):
        def control(self) -> str:
            return "pause" if len(self.steps) == 5 and not self.checkpoints else "continue"

    hp = _search_hp()
    hp["search"] = {"trials": 2, "budget_minutes": 30.0, "learning_rates": RATES[1:]}  # one rung: quicker
    first = PauseAfter()
    paused = train(make_spec(method=Method.FULL, hyperparameters=hp), first)
    assert paused.status == "paused" and paused.last_checkpoint
    state, identity = read_state(paused.last_checkpoint)
    assert state.search["winner"]["trial"] == paused.search["winner"]["trial"]
    assert "search" not in identity["hyperparameters"]

    again = RecordingReporter()
    res = train(make_spec(method=Method.FULL, hyperparameters=hp), again, resume_from=paused.last_checkpoint)
    assert res.status == "succeeded" and again.trials == []
    assert res.search["winner"] == paused.search["winner"]
    assert res.resolved_spec["hyperparameters"]["learning_rate"] == paused.search["winner"]["learning_rate"]


@pytest.mark.parametrize(
    ("search", "extra", "field", "words"),
    [
        ("fast", {}, "hyperparameters.search", "must be an object"),
        ({"budget_minutes": 5}, {}, "hyperparameters.search.trials", "is required"),
        ({"trials": 3}, {}, "hyperparameters.search.budget_minutes", "is required"),
        ({"trials": 1, "budget_minutes": 5}, {}, "hyperparameters.search.trials", "between 2 and 16"),
        ({"trials": 2.5, "budget_minutes": 5}, {}, "hyperparameters.search.trials", "integer"),
        ({"trials": 3, "budget_minutes": 0}, {}, "hyperparameters.search.budget_minutes", "positive"),
        ({"trials": 3, "budget_minutes": "ten"}, {}, "hyperparameters.search.budget_minutes", "number"),
        ({"trials": 3, "budget_minutes": 5, "rungs": 2}, {}, "hyperparameters.search.rungs", "unknown"),
        ({"trials": 3, "budget_minutes": 5, "learning_rates": [0]}, {}, "search.learning_rates", "positive"),
        (
            {"trials": 3, "budget_minutes": 5},
            {"learning_rate": 1e-3},
            "hyperparameters.learning_rate",
            "search",
        ),
        (
            {"trials": 3, "budget_minutes": 5},
            {"validation_file": None},
            "hyperparameters.search",
            "validation",
        ),
    ],
)
def test_search_settings_are_checked_before_any_compute(make_spec, search, extra, field, words):
    hp = {"learning_rate": extra.pop("learning_rate", "auto"), "search": search}
    with pytest.raises(SpecError) as err:
        train(make_spec(hyperparameters=hp, **extra))
    assert err.value.field.endswith(field) and words in err.value.message
