"""Evaluation metrics. Each is a pure function over one case's result (the `rag ask --json` object plus
the answer's sentences and their cited passages), averaged over the cases it applies to.

- **fact recall** (answerable cases): share of fact groups the answer covers; a group is covered when the
  answer contains any of its alternatives (normalized). A refused answer covers nothing.
- **evidence recall@k** (answerable cases with evidence): share of evidence quotes found inside the top-k
  retrieved passages.
- **MRR** (same cases): 1 / rank of the first retrieved passage holding any evidence quote (0 if none).
- **citation recall** (ALCE, Gao et al. 2023; answered cases): per answer sentence, 1 when the
  concatenation of its cited passages supports it, else 0 (a sentence without citations scores 0);
  averaged over sentences, then over cases.
- **citation precision** (ALCE; answered cases): a citation of a sentence is *irrelevant* when it alone
  does not support the sentence and the sentence's other citations still do; citations of unsupported
  sentences get no credit; precise citations / all citations.
- **refusal rate** (unanswerable cases): share refused. **false refusal rate** (answerable cases): share
  refused.
- **latency p50/p95**: milliseconds per answer (nearest-rank percentiles).

"Supports" is a seam (`Support`): the default judge is `rag.verify.LexicalEmbeddingJudge` with a stricter
threshold than answer-time verification uses; an NLI judge can replace it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evals.dataset import EvalCase, normalize
from rag.types import Passage

Support = Callable[[str, Sequence[Passage]], bool]  # (sentence, cited passages) -> supported together?


@dataclass(frozen=True)
class Sentence:
    text: str
    cited: list[Passage]


def fact_recall(case: EvalCase, answer: str, refused: bool) -> float:
    if not case.facts:
        return 1.0
    if refused:
        return 0.0
    text = normalize(answer)
    return sum(any(normalize(alt) in text for alt in group) for group in case.facts) / len(case.facts)


def _holds(passage: str, quote: str) -> bool:
    return normalize(quote) in normalize(passage)


def evidence_recall(case: EvalCase, retrieved: Sequence[str], k: int) -> float:
    if not case.evidence:
        return 1.0
    top = retrieved[:k]
    return sum(any(_holds(p, q) for p in top) for q in case.evidence) / len(case.evidence)


def reciprocal_rank(case: EvalCase, retrieved: Sequence[str]) -> float:
    for rank, passage in enumerate(retrieved, 1):
        if any(_holds(passage, q) for q in case.evidence):
            return 1.0 / rank
    return 0.0


def citation_scores(sentences: Sequence[Sentence], supports: Support) -> tuple[float, float, int]:
    """(ALCE citation recall, precise citations, all citations) of one answer."""
    if not sentences:
        return 0.0, 0.0, 0
    supported = 0
    precise = 0
    total = 0
    for sentence in sentences:
        total += len(sentence.cited)
        if not sentence.cited or not supports(sentence.text, sentence.cited):
            continue
        supported += 1
        for i, passage in enumerate(sentence.cited):
            others = sentence.cited[:i] + sentence.cited[i + 1 :]
            irrelevant = (
                not supports(sentence.text, [passage]) and bool(others) and supports(sentence.text, others)
            )
            precise += not irrelevant
    return supported / len(sentences), float(precise), total


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered) / 100))  # q * n first: exact for integer q
    return float(ordered[rank - 1])


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass
class CaseScore:
    id: str
    answerable: bool
    refused: bool
    fact_recall: float | None
    evidence_recall: float | None
    reciprocal_rank: float | None
    citation_recall: float | None
    precise_citations: float
    citations: int
    latency_ms: float
    error: str = ""

    @property
    def passed(self) -> bool:
        if self.error:
            return False
        if not self.answerable:
            return self.refused
        return not self.refused and (self.fact_recall or 0.0) >= 1.0


def summarize(scores: Sequence[CaseScore]) -> dict[str, Any]:
    """The metrics of a run (see the module docstring)."""
    ok = [s for s in scores if not s.error]
    answerable = [s for s in ok if s.answerable]
    unanswerable = [s for s in ok if not s.answerable]
    answered = [s for s in ok if not s.refused and s.citation_recall is not None]
    citations = sum(s.citations for s in answered)
    latencies = [s.latency_ms for s in ok]
    return {
        "cases": len(scores),
        "errors": len(scores) - len(ok),
        "fact_recall": mean([s.fact_recall for s in answerable if s.fact_recall is not None]),
        "evidence_recall": mean([s.evidence_recall for s in answerable if s.evidence_recall is not None]),
        "mrr": mean([s.reciprocal_rank for s in answerable if s.reciprocal_rank is not None]),
        "citation_recall": mean([s.citation_recall for s in answered if s.citation_recall is not None]),
        "citation_precision": sum(s.precise_citations for s in answered) / citations if citations else 0.0,
        "refusal_rate": mean([float(s.refused) for s in unanswerable]),
        "false_refusal_rate": mean([float(s.refused) for s in answerable]),
        "passed": sum(s.passed for s in scores),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
    }
