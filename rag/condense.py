"""Follow-up questions: turn a question that leans on the conversation into a standalone retrieval query.

Offline (`RuleCondenser`): when the question refers back (a pronoun, "that", "there", an elliptic "and
the ...?") or has almost no content words, the previous user question's content words and the names and
numbers of the previous answer are carried into the query, in brackets after the question: retrieval
reads them, the evidence scorer weighs them below the question's own words, and the previous answer's
paragraph is preferred (`rag.evidence`). An LLM backend condenses with a prompt instead
(`rag.generators.chat`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

from rag.text import MARKER, STOPWORDS, tokenize
from rag.types import Query, Turn

_WORD = re.compile(r"[\w’'£.,-]*\w", re.UNICODE)
_REFERRING = frozenset(
    """he him his she her hers it its they them their theirs this that these those there then such former
    latter same him? it? that? this? other another else""".split()
)
_FOLLOW_ON = re.compile(r"^\s*(and|but|so|also|what about|how about|and what|why|why not|really)\b", re.I)
_NAME_OR_NUMBER = re.compile(r"£?\d[\d,.]*\w*|[A-Z][\w’'-]*(?:\s+(?:of\s+)?[A-Z][\w’'-]*)*")


class Condenser(ABC):
    @abstractmethod
    def condense(self, question: str, history: Sequence[Turn]) -> Query:
        """`question` asked after `history`, made standalone: the question itself (or rewritten), with
        the conversation's terms for retrieval when it leans on them."""


def needs_context(question: str) -> bool:
    words = [w.lower() for w in _WORD.findall(question)]
    if any(w in _REFERRING for w in words) or _FOLLOW_ON.match(question):
        return True
    return len(tokenize(question)) <= 1


def salient_terms(history: Sequence[Turn], limit: int = 14) -> list[str]:
    """Content words of the last user question, then names and numbers of the last answer."""
    last_user = next((t.content for t in reversed(history) if t.role == "user"), "")
    last_answer = next((t.content for t in reversed(history) if t.role == "assistant"), "")
    terms = [
        w for w in _WORD.findall(last_user) if w.lower() not in STOPWORDS and w.lower() not in _REFERRING
    ]
    answer = MARKER.sub(" ", last_answer)
    for sentence in re.split(r"(?<=[.!?])\s+", answer):
        for match in _NAME_OR_NUMBER.finditer(sentence):
            phrase = match.group(0)
            first_word = match.start() == 0 and phrase.lower() in STOPWORDS
            if not first_word and phrase.lower() not in STOPWORDS:
                terms.append(phrase)
    seen: set[str] = set()
    unique = []
    for term in terms:
        if term.lower() not in seen:
            seen.add(term.lower())
            unique.append(term)
    return unique[:limit]


class RuleCondenser(Condenser):
    """Carries the last exchange's salient terms into the query in brackets."""

    def condense(self, question: str, history: Sequence[Turn]) -> Query:
        if not history or not needs_context(question):
            return Query(question)
        return Query(question, tuple(salient_terms(history)))


class NoCondenser(Condenser):
    def condense(self, question: str, history: Sequence[Turn]) -> Query:
        return Query(question)
