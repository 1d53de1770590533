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
from rag.types import Passage

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
    """The words of a thread comment's metadata a question may ask about."""
    if passage.kind != "comment":
        return ""
    meta = passage.metadata
    op = " original poster OP" if meta.get("is_op") else ""
    parent = str(meta.get("parent_author", ""))
    reply = f" replied to {parent} reply" if parent else ""
    return f"{passage.author} comment{op}{reply} upvotes {meta.get('upvotes')} downvotes {meta.get('downvotes')}"


class EvidenceScorer:
    """Scores the sentences of retrieved passages against a question."""

    def __init__(self, embedder: Embedder, lexical: LexicalIndex) -> None:
        self.embedder = embedder
        self.lexical = lexical

    def score(self, question: str, query: str, passages: Sequence[Passage]) -> list[Evidence]:
        weights: dict[str, float] = {}
        for token in tokenize(query):
            weights[token] = max(weights.get(token, 0.0), 0.5 * self.lexical.term_weight(token))
        for token in tokenize(question):
            weights[token] = self.lexical.term_weight(token)
        total = sum(weights.values()) or 1.0
        kind = expected_type(question)

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
            tokens = set(tokenize(text)) | set(tokenize(author_line(passages[i])))
            coverage = sum(w for t, w in weights.items() if t in tokens) / total
            typed = bool(_TYPE_PATTERN[kind].search(text) or (kind == "name" and passages[i].author)) if kind else None
            prior = 1.0 / (1 + i)
            score = 0.5 * float(similarity) + 0.5 * coverage + 0.05 * prior
            if typed is False:
                score -= 0.1
            evidence.append(Evidence(i, s, e, text, coverage, float(similarity), typed, score))
        evidence.sort(key=lambda ev: -ev.score)
        return evidence

    def assess(self, question: str, query: str, passages: Sequence[Passage]) -> Assessment:
        evidence = self.score(question, query, passages)
        if not evidence:
            return Assessment(False, "nothing retrieved", evidence)
        best = evidence[0]
        if best.similarity < 0.3 or best.coverage < 0.25 or best.score < 0.4:
            return Assessment(False, f"weak evidence (score {best.score:.2f})", evidence)
        return Assessment(True, "", evidence)
