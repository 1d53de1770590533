"""The calibration's decision rules, on small made-up inputs (the fit itself runs with `rag eval
--calibrate` and is measured by the quality gate)."""

from __future__ import annotations

from evals.calibrate import COVERAGE_TOLERANCE, balanced_accuracy, fit_judge, near_best


def test_facts_come_first_then_precision() -> None:
    trials = [
        ((0.80, 0.70), {"name": "precise but misses facts"}),
        ((0.87, 0.50), {"name": "best coverage"}),
        ((0.87 - COVERAGE_TOLERANCE / 2, 0.60), {"name": "nearly as complete, more precise"}),
    ]
    kept = near_best(trials)
    assert [t[1]["name"] for t in kept] == ["best coverage", "nearly as complete, more precise"]
    assert max(kept, key=lambda t: t[0][1])[1]["name"] == "nearly as complete, more precise"


def test_the_judge_separates_what_the_features_separate() -> None:
    rows: list[tuple[list[float] | None, bool]] = [
        ([0.9, 0.8], True),
        ([0.8, 0.9], True),
        ([0.7, 0.7], True),
        ([0.2, 0.3], False),
        ([0.3, 0.1], False),
        (None, False),  # refused by type before the judge
    ]
    weights, accuracy = fit_judge(rows)
    assert accuracy == 1.0 == balanced_accuracy(rows, weights)
