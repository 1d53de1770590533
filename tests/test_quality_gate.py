"""The CI quality gate: the dev set through the default pipeline must meet evals/thresholds.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.dataset import load_dataset
from evals.gate import load_thresholds, violations
from evals.runner import run
from ingest.indexer import ingest
from rag.settings import Settings

from .conftest import CORPUS, REPO

DEV = REPO / "evals" / "datasets" / "dev.jsonl"


def test_dev_set_meets_the_thresholds(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    ingest([CORPUS], settings)
    cases = load_dataset(DEV)
    assert len(cases) >= 60
    (result,) = run(cases, settings, ["default"], k=5)
    summary = result.summary
    failed = [s.id for s in result.scores if not s.passed]
    problems = violations(summary, load_thresholds())
    assert summary["errors"] == 0
    assert not problems, f"{problems}; failed cases: {failed}"


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ({"fact_recall": 0.9, "false_refusal_rate": 0.0}, []),
        (
            {"fact_recall": 0.5, "false_refusal_rate": 0.0},
            ["fact_recall = 0.500 is below the threshold 0.85"],
        ),
        (
            {"fact_recall": 0.9, "false_refusal_rate": 0.2},
            ["false_refusal_rate = 0.200 is above the threshold 0.05"],
        ),
    ],
)
def test_gate_reports_each_violation(summary: dict[str, float], expected: list[str]) -> None:
    thresholds = {"minimum": {"fact_recall": 0.85}, "maximum": {"false_refusal_rate": 0.05}}
    assert violations(summary, thresholds) == expected


def test_thresholds_never_below_the_starting_values() -> None:
    # The starting values: the gate may only be raised from here.
    minimum = load_thresholds()["minimum"]
    maximum = load_thresholds()["maximum"]
    assert minimum["fact_recall"] >= 0.85
    assert minimum["evidence_recall"] >= 0.95
    assert minimum["citation_precision"] >= 0.9
    assert minimum["refusal_rate"] >= 0.8
    assert maximum["false_refusal_rate"] <= 0.1
