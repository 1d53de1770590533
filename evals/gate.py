"""The quality gate: compare a run's metrics with the thresholds kept in `evals/thresholds.toml`."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

THRESHOLDS = Path(__file__).with_name("thresholds.toml")


def load_thresholds(path: Path = THRESHOLDS) -> dict[str, dict[str, float]]:
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    return {"minimum": dict(data.get("minimum", {})), "maximum": dict(data.get("maximum", {}))}


def violations(summary: dict[str, Any], thresholds: dict[str, dict[str, float]]) -> list[str]:
    """One line per metric outside its threshold (empty when the gate passes)."""
    out = []
    for metric, floor in thresholds["minimum"].items():
        if summary[metric] < floor:
            out.append(f"{metric} = {summary[metric]:.3f} is below the threshold {floor}")
    for metric, ceiling in thresholds["maximum"].items():
        if summary[metric] > ceiling:
            out.append(f"{metric} = {summary[metric]:.3f} is above the threshold {ceiling}")
    return out
