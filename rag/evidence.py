"""Sentence-level evidence: which sentences of the retrieved passages answer the question, and whether
the passages hold an answer at all.

A sentence's score combines three independent signals, because no single similarity separates answerable
from unanswerable questions on this corpus:
- coverage: the IDF-weighted share of the question's content words found in the sentence (or in the
  author line of the comment it belongs to);
- similarity: cosine between the query and the sentence embeddings;
- answer type: "how much/many" wants a number, "when" a date, "who" a name.
The question is judged answerable when the best sentence is supported by both meaning and words, and
no rare content word of the question is missing from the retrieved passages altogether.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.embeddings import Embedder
from rag.lexical import LexicalIndex, tokenize
from rag.types import Passage, Turn

_NUMBER = re.compile(r"£\s?\d|\$\s?\d|€\s?\d|\b\d[\d,.]*\b|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|hundred|thousand|million|billion|dozen)\b", re.I)
_DATE = re.compile(
    r"\b(1[89]\d\d|20\d\d)\b|\b(January|February|March|April|May|June|July|August|September|October|November|December)\b"
    r"|\b(ago|yesterday|today|last (year|month|week))\b",
    re.I,
)
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+|\b[A-Z]{2,}\b|\w+@\w")

EXPECTS = {
    "number": re.compile(r"\bhow (much|many)\b|\bwhat (amount|sum|percentage|number)\b|\bvotes?\b|\bupvotes?\b|\bdownvotes?\b|\bscore\b", re.I),
    "date": re.compile(r"\bwhen\b|\bwhat (year|date|month|day|time)\b|\bhow long ago\b", re.I),
    "name": re.compile(r"\bwho(m|se)?\b|\bwhich (person|people|company|organi[sz]ation|university|institute|charity|expert|user|commenter)\b", re.I),
}
_TYPE_PATTERN = {"number": _NUMBER, "date": _DATE, "name": _NAME}


def expected_type(question: str) -> str | None:
    for kind, pattern in EXPECTS.items():
        if pattern.search(question):
            return kind
    return None


@dataclass(frozen=True)
class Evidence:
    passage: int  # index into the passages
    start: int  # sentence span inside the passage text
    end: int
    text: str
    coverage: float
    similarity: float
    typed: bool | None  # has the expected kind of answer; None when the question expects no kind
    score: float


@dataclass(frozen=True)
class Assessment:
    answerable: bool
    reason: str
    evidence: list[Evidence]  # best first


def author_line(passage: Passage) -> str:
    """The words of a thread comment's metadata that a question may ask about."""
    return comment_header(passage.metadata)


def has_answer_type(kind: str, text: str, question: str) -> bool:
    """True when `text` holds something of the expected kind that the question does not already say."""
    asked = question.lower()
    for match in _TYPE_PATTERN[kind].finditer(text):
        value = match.group(0).lower().strip("£$€ ")
        if value and value not in asked:
            return True
    return False


def _overlap(tokens: set[str], other: set[str]) -> float:
    return len(tokens & other) / len(tokens) if tokens else 0.0


class EvidenceScorer:
    """Scores the sentences of retrieved passages against a question."""

    def __init__(self, embedder: Embedder, lexical: LexicalIndex) -> None:
        self.embedder = embedder
        self.lexical = lexical

    def score(
        self, question: str, query: str, passages: Sequence[Passage], history: Sequence[Turn] = ()
    ) -> list[Evidence]:
        """Every sentence of the passages (once, even when chunks overlap), best first."""
        question_terms = {t: self.lexical.term_weight(t) for t in tokenize(question)}
        context_terms = {t: self.lexical.term_weight(t) for t in tokenize(query) if t not in question_terms}
        q_total = sum(question_terms.values()) or 1.0
        c_total = sum(context_terms.values()) or 1.0
        kind = expected_type(question)
        previous = next((t.content for t in reversed(history) if t.role == "assistant"), "")
        previous_tokens = set(tokenize(previous))

        spans: list[tuple[int, int, int]] = []
        seen: set[tuple[str, int]] = set()
        for i, passage in enumerate(passages):
            for s, e in self.lexical.sentences(passage.id, passage.text):
                key = (str(passage.metadata.get("path", "")), passage.start + s)
                if key not in seen:  # the same sentence in two overlapping chunks counts once
                    seen.add(key)
                    spans.append((i, s, e))
        if not spans:
            return []
        texts = [passages[i].text[s:e] for i, s, e in spans]
        vectors = self.embedder.encode_cached([query, *texts])
        similarities = vectors[1:] @ vectors[0]
        evidence = []
        for (i, s, e), text, similarity in zip(spans, texts, similarities, strict=True):
            header = passages[i].header
            tokens = set(tokenize(text))
            seen_tokens = tokens | set(tokenize(header))
            coverage = sum(w for t, w in question_terms.items() if t in seen_tokens) / q_total
            context = sum(w for t, w in context_terms.items() if t in seen_tokens) / c_total if context_terms else 0.0
            typed = has_answer_type(kind, f"{text} {header}", question) if kind else None
            score = 0.5 * float(similarity) + 0.4 * coverage + 0.1 * context + 0.05 / (1 + i)
            if typed is False:
                score -= 0.15
            if previous_tokens and _overlap(tokens, previous_tokens) > 0.7:
                score -= 0.3  # a follow-up asks for something new, not the previous answer again
            evidence.append(Evidence(i, s, e, text, coverage, float(similarity), typed, score))
        evidence.sort(key=lambda ev: -ev.score)
        return evidence

    def assess(
        self, question: str, query: str, passages: Sequence[Passage], history: Sequence[Turn] = ()
    ) -> Assessment:
        evidence = self.score(question, query, passages, history)
        if not evidence:
            return Assessment(False, "nothing retrieved", evidence)
        best = evidence[0]
        if best.typed is False:
            return Assessment(False, "no passage holds the kind of answer asked for", evidence)
        if best.score < 0.35:
            return Assessment(False, f"weak evidence (score {best.score:.2f})", evidence)
        return Assessment(True, "", evidence)
