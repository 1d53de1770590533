"""Small numeric helpers shared by the models of the answer path."""

from __future__ import annotations

import math


def logistic(x: float) -> float:
    """1 / (1 + e^-x), without overflow far from 0."""
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))
