"""The shape of the budgeted search's successive halving, apart from the search itself: its module
imports torch, and the job page needs the shape to show how far a running search is."""

from __future__ import annotations

import math


def surviving_trials(alive: int) -> int:
    """How many of a rung's trials go on to the next rung: the better half, rounded up."""
    return math.ceil(alive / 2)


def planned_rungs(trials: int) -> list[int]:
    """The number of trials at each rung when the budget lasts: [4, 2] for 4 trials (the last rung
    is the one whose better half would be a single trial)."""
    rungs = [trials]
    while surviving_trials(rungs[-1]) > 1:
        rungs.append(surviving_trials(rungs[-1]))
    return rungs
