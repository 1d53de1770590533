"""Answer or refuse: a seam chosen by name (`answer.judge`).

- `evidence` (default): refuses when no retrieved sentence states the kind of value the question asks
  for (a number, a duration, a date ...); otherwise a logistic model over the best evidence's features
  (similarity, coverage of the question's words in the sentence's context, and how much of what the
  question asks about, its focus, the passage holds) decides. Its weights are the setting `answer.judge_weights`,
  fitted on the tuning suites by `rag eval --calibrate`.
- `none`: answers whenever something was retrieved, and leaves it to the generator and the verifier
  (for LLM generators, which read the passages themselves).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from rag.errors import UnknownBackend
from rag.evidence import EvidenceScorer, Features
from rag.maths import logistic
from rag.settings import AnswerSettings
from rag.types import Passage, Turn

JUDGES = ("auto", "evidence", "none")


@dataclass(frozen=True)
class Verdict:
    answerable: bool
    reason: str = ""
    confidence: float = 1.0


class AnswerabilityJudge(ABC):
    @abstractmethod
    def judge(
        self, question: str, query: str, passages: Sequence[Passage], history: Sequence[Turn]
    ) -> Verdict:
        """Whether the passages hold an answer to the (standalone) question."""


def probability(weights: Sequence[float], features: Features) -> float:
    """The logistic model: weights are [bias, *weights of `Features.vector()`]."""
    return logistic(weights[0] + sum(w * x for w, x in zip(weights[1:], features.vector(), strict=True)))


class EvidenceJudge(AnswerabilityJudge):
    def __init__(self, scorer: EvidenceScorer, settings: AnswerSettings) -> None:
        self.scorer = scorer
        self.settings = settings

    def judge(
        self, question: str, query: str, passages: Sequence[Passage], history: Sequence[Turn]
    ) -> Verdict:
        if not passages:
            return Verdict(False, "nothing relevant retrieved")
        assessment = self.scorer.assess(question, query, passages, history)
        if assessment.features is None:
            return Verdict(False, assessment.reason or "nothing relevant retrieved")
        if not assessment.lead:
            return Verdict(False, assessment.reason)
        p = probability(self.settings.judge_weights, assessment.features)
        if p < 0.5:
            return Verdict(False, f"the best evidence does not answer the question (confidence {p:.2f})", p)
        return Verdict(True, "", p)


class RetrievalJudge(AnswerabilityJudge):
    def judge(
        self, question: str, query: str, passages: Sequence[Passage], history: Sequence[Turn]
    ) -> Verdict:
        return Verdict(bool(passages), "" if passages else "nothing relevant retrieved")


class UnknownJudge(UnknownBackend):
    """A judge name that is not registered (an unknown backend: the CLI exits 2 with one line, the API answers
    503 `unavailable` and logs it)."""


def make_judge(
    name: str, scorer: EvidenceScorer, settings: AnswerSettings, *, llm: bool = False
) -> AnswerabilityJudge:
    """The judge called `name`; "auto" is the evidence judge for the extractive generator and none for an
    LLM generator (the model reads the passages and may refuse; verification enforces support)."""
    if name == "auto":
        name = "none" if llm else "evidence"
    if name == "evidence":
        return EvidenceJudge(scorer, settings)
    if name == "none":
        return RetrievalJudge()
    raise UnknownJudge(f"unknown answerability judge {name!r}; known: {', '.join(JUDGES)}")
