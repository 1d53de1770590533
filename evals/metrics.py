"""Evaluation metrics. Each is a pure function over one case's result (the `rag ask --json` object plus
the answer's sentences and their cited passages), averaged over the cases it applies to.

- **fact recall** (answerable cases): share of fact groups the answer covers; a group is covered when the
  answer contains any of its alternatives as whole words (`fact_matches`: case, quotes and whitespace
  normalized, citation markers `[n]` removed from the answer, `1,000` written as `1000`; `26` is not found
  in `260`, `26.5` or `1,260`, nor `two` in `network`). A refused answer covers nothing.
- **evidence recall@k** (answerable cases with evidence): share of evidence quotes found inside the top-k
  retrieved passages.
- **MRR** (same cases): 1 / rank of the first retrieved passage holding any evidence quote (0 if none).
- **citation precision (gold)** (answered answerable cases with evidence): share of the answer's
  citations whose quote matches one of the case's evidence quotes (`quote_matches_gold`: normalized, one
  contains the other, or they share at least half of the shorter one's content words); over all their
  citations together. A citation quoting several spans of its passage counts once per span, so quoting
  more than the evidence costs precision. The headline citation metric: it needs no judge.
- **citation recall** (ALCE, Gao et al. 2023; answered cases): per answer sentence, 1 when the
  concatenation of its cited passages supports it, else 0 (a sentence without citations scores 0);
  averaged over sentences, then over cases.
- **citation precision (judge)** (ALCE; answered cases): a citation of a sentence is *irrelevant* when it
  alone does not support the sentence and the sentence's other citations still do; citations of
  unsupported sentences get no credit; precise citations / all citations.
- **refusal rate** (unanswerable cases): share refused. **false refusal rate** (answerable cases): share
  refused.
- **latency p50/p95**: milliseconds per answer (nearest-rank percentiles).
- **reader top-1, cosine top-1** (answerable cases with evidence): whether the trained reader's best
  sentence among those the answerer saw matches a gold evidence quote, and the same for plain cosine
  similarity between question and sentence (the baseline). **reader AUC**: the probability that an
  answerable case's best reader score beats an unanswerable one's (how well it tells them apart).

"Supports" is a seam (`Support`): the default judge is `rag.verify.LexicalEmbeddingJudge` with a stricter
threshold than answer-time verification uses; an NLI judge can replace it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evals.dataset import EvalCase, normalize
from rag.index.lexical import tokenize
from rag.text import strip_markers
from rag.types import Passage

Support = Callable[[str, Sequence[Passage]], bool]  # (sentence, cited passages) -> supported together?


@dataclass(frozen=True)
class Sentence:
    text: str
    cited: list[Passage]


_THOUSANDS = re.compile(r"(?<!\d)\d{1,3}(?:,\d{3})+(?!\d)")  # 1,000 and 12,345,678, not 2019,2020
_WORD = re.compile(r"\w")
_NUMBER_BEFORE = re.compile(r"\d[.,]$")  # "0." before "26": the 26 is part of 0.26
_NUMBER_AFTER = re.compile(r"[.,]\d")  # ".5" after "26": the 26 is part of 26.5


def normalize_numbers(text: str) -> str:
    """Thousands separators dropped: "£1,260,000" -> "£1260000"."""
    return _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)


def _matchable(text: str) -> str:
    return normalize_numbers(normalize(text))


def _is_word(char: str) -> bool:
    return bool(_WORD.match(char))


def _bounded(text: str, start: int, end: int, alt: str) -> bool:
    """Does the occurrence text[start:end] of `alt` stand on its own (not inside a word or a number)?"""
    before, after = text[:start], text[end:]
    if _is_word(alt[0]) and before and _is_word(before[-1]):
        return False
    if _is_word(alt[-1]) and after and _is_word(after[0]):
        return False
    if alt[0].isdigit() and _NUMBER_BEFORE.search(before):
        return False
    return not (alt[-1].isdigit() and _NUMBER_AFTER.match(after))


def fact_matches(alternative: str, answer: str) -> bool:
    """Whether the answer states `alternative`: whole words, after normalization (see the module doc)."""
    alt = _matchable(alternative)
    if not alt:
        return False
    text = _matchable(strip_markers(answer))
    start = text.find(alt)
    while start >= 0:
        if _bounded(text, start, start + len(alt), alt):
            return True
        start = text.find(alt, start + 1)
    return False


def fact_recall(case: EvalCase, answer: str, refused: bool) -> float:
    if not case.facts:
        return 1.0
    if refused:
        return 0.0
    covered = sum(any(fact_matches(alt, answer) for alt in group) for group in case.facts)
    return covered / len(case.facts)


GOLD_OVERLAP = 0.5  # share of the shorter quote's content words the two quotes must share


def quote_matches_gold(quote: str, gold: str) -> bool:
    """Whether a citation's quote is a gold evidence quote: normalized, one contains the other, or they
    share at least `GOLD_OVERLAP` of the shorter one's content words (`rag.index.lexical.tokenize`)."""
    cited, expected = normalize(quote), normalize(gold)
    if not cited or not expected:
        return False
    if cited in expected or expected in cited:
        return True
    cited_words, expected_words = set(tokenize(cited)), set(tokenize(expected))
    shorter = cited_words if len(cited) <= len(expected) else expected_words
    if not shorter:
        return False
    return len(cited_words & expected_words) >= GOLD_OVERLAP * len(shorter)


def gold_citations(case: EvalCase, quotes: Sequence[str]) -> tuple[int, int]:
    """(citations whose quote matches a gold evidence quote of the case, citations) of one answer."""
    matched = sum(any(quote_matches_gold(q, gold) for gold in case.evidence) for q in quotes)
    return matched, len(quotes)


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


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """The probability that a positive's score beats a negative's (ties count half); 0 without both."""
    if not positives or not negatives:
        return 0.0
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


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
    gold_matched: int = 0  # answered answerable cases with evidence: citations matching a gold quote
    gold_citations: int = 0  # ... and all their citations
    reader_hit: bool | None = None  # the reader's best sentence matches the gold evidence
    cosine_hit: bool | None = None  # plain cosine's best sentence does
    reader_best: float | None = None  # the reader's best probability among the sentences

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
    gold = sum(s.gold_citations for s in ok)
    latencies = [s.latency_ms for s in ok]
    return {
        "cases": len(scores),
        "errors": len(scores) - len(ok),
        "fact_recall": mean([s.fact_recall for s in answerable if s.fact_recall is not None]),
        "evidence_recall": mean([s.evidence_recall for s in answerable if s.evidence_recall is not None]),
        "mrr": mean([s.reciprocal_rank for s in answerable if s.reciprocal_rank is not None]),
        "citation_precision_gold": sum(s.gold_matched for s in ok) / gold if gold else 0.0,
        "citation_recall": mean([s.citation_recall for s in answered if s.citation_recall is not None]),
        "citation_precision": sum(s.precise_citations for s in answered) / citations if citations else 0.0,
        "refusal_rate": mean([float(s.refused) for s in unanswerable]),
        "false_refusal_rate": mean([float(s.refused) for s in answerable]),
        "passed": sum(s.passed for s in scores),
        "reader_top1": mean([float(s.reader_hit) for s in answerable if s.reader_hit is not None]),
        "cosine_top1": mean([float(s.cosine_hit) for s in answerable if s.cosine_hit is not None]),
        "reader_auc": auc(
            [s.reader_best for s in answerable if s.reader_best is not None],
            [s.reader_best for s in unanswerable if s.reader_best is not None],
        ),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
    }


# The metrics `summarize` reports that a threshold may name (evals/thresholds.toml).
METRIC_NAMES = (
    "fact_recall",
    "evidence_recall",
    "mrr",
    "citation_precision_gold",
    "citation_recall",
    "citation_precision",
    "refusal_rate",
    "false_refusal_rate",
    "reader_top1",
    "cosine_top1",
    "reader_auc",
    "latency_p50_ms",
    "latency_p95_ms",
)
