"""Small numeric helpers shared by the models of the answer path."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def logistic(x: float) -> float:
    """1 / (1 + e^-x), without overflow far from 0."""
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


def soft_coverage(
    words: Sequence[str], credit: Mapping[str, float], weights: Mapping[str, float] | None = None
) -> float:
    """How much of `words` a text covers: each word counts its `credit` (1 when the text holds it, else
    the embedding similarity of its nearest word there, 0 without one), weighted by `weights` (IDF) or
    equally; 1.0 when there are no words."""
    if not words:
        return 1.0
    weight = weights or {}
    total = sum(weight.get(w, 1.0) for w in words)
    return sum(weight.get(w, 1.0) * credit.get(w, 0.0) for w in words) / total
