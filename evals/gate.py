"""The quality gate: compare a suite's metrics with its thresholds in `evals/thresholds.toml`.

    [suites.NAME.minimum]   # the metric must be at least this
    fact_recall = 0.85
    [suites.NAME.maximum]   # the metric must be at most this
    false_refusal_rate = 0.05

NAME is a suite of `evals/suites.toml`; a metric is a key of `evals.metrics.summarize` (`METRIC_NAMES`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evals.metrics import METRIC_NAMES
from evals.suites import read_toml
from rag.errors import UsageError

THRESHOLDS = Path(__file__).with_name("thresholds.toml")
Thresholds = dict[str, dict[str, float]]  # {"minimum": {metric: value}, "maximum": {metric: value}}


class ThresholdsError(UsageError):
    """A malformed thresholds file; the message names the file, the place and the reason."""


def _bounds(path: Path, suite: str, kind: str, table: Any) -> dict[str, float]:
    where = f"{path}: [suites.{suite}.{kind}]"
    if not isinstance(table, dict):
        raise ThresholdsError(f"{where} must be a table of metric = number")
    out = {}
    for metric, value in table.items():
        if metric not in METRIC_NAMES:
            raise ThresholdsError(f"{where}: unknown metric {metric!r}; known: {', '.join(METRIC_NAMES)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ThresholdsError(f"{where}: {metric} must be a number")
        out[metric] = float(value)
    return out


def load_all_thresholds(path: Path = THRESHOLDS) -> dict[str, Thresholds]:
    """Every suite's thresholds: {suite: {"minimum": {...}, "maximum": {...}}}."""
    data = read_toml(path, ThresholdsError)
    unknown = data.keys() - {"suites"}
    if unknown:
        raise ThresholdsError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; use [suites.NAME.*]")
    suites = data.get("suites", {})
    out = {}
    for suite, tables in suites.items():
        if not isinstance(tables, dict) or not tables.keys() <= {"minimum", "maximum"}:
            raise ThresholdsError(f"{path}: [suites.{suite}] holds only [minimum] and [maximum] tables")
        out[suite] = {
            kind: _bounds(path, suite, kind, tables.get(kind, {})) for kind in ("minimum", "maximum")
        }
    return out


def load_thresholds(suite: str = "dev", path: Path = THRESHOLDS) -> Thresholds:
    """One suite's thresholds; a suite without any is a `ThresholdsError`."""
    thresholds = load_all_thresholds(path)
    if suite not in thresholds:
        raise ThresholdsError(f"{path}: no thresholds for suite {suite!r} (add [suites.{suite}.minimum])")
    return thresholds[suite]


def violations(summary: dict[str, Any], thresholds: Thresholds) -> list[str]:
    """One line per metric outside its threshold (empty when the gate passes)."""
    out = []
    for metric, floor in thresholds.get("minimum", {}).items():
        if summary[metric] < floor:
            out.append(f"{metric} = {summary[metric]:.3f} is below the threshold {floor}")
    for metric, ceiling in thresholds.get("maximum", {}).items():
        if summary[metric] > ceiling:
            out.append(f"{metric} = {summary[metric]:.3f} is above the threshold {ceiling}")
    return out
