"""Follow-up questions: turn a question that leans on the conversation into a standalone retrieval query.

Offline (`RuleCondenser`): when the question refers back (a pronoun, "that", "there", an elliptic "and
the ...?") or has almost no content words, the previous user question's content words and the names and
numbers of the previous answer are carried into the query. An LLM backend condenses with a prompt
instead (`rag.generators.openai`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

from rag.text import STOPWORDS, tokenize
from rag.types import Turn

_WORD = re.compile(r"[\w’'£.,-]*\w", re.UNICODE)
_REFERRING = frozenset(
    """he him his she her hers it its they them their theirs this that these those there then such former
    latter same him? it? that? this? other another else""".split()
)
_FOLLOW_ON = re.compile(r"^\s*(and|but|so|also|what about|how about|and what|why|why not|really)\b", re.I)
_MARKER = re.compile(r"\[\d+\]")
_NAME_OR_NUMBER = re.compile(r"£?\d[\d,.]*\w*|[A-Z][\w’'-]*(?:\s+(?:of\s+)?[A-Z][\w’'-]*)*")


class Condenser(ABC):
    @abstractmethod
    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """A standalone query for `question` asked after `history`: the question itself, made standalone,
        optionally followed by retrieval-only context terms in brackets."""


def standalone_question(query: str) -> str:
    """The question part of a condensed query (without the bracketed context terms)."""
    match = re.match(r"^(.*\S)\s+\((?:[^()]*)\)$", query, re.S)
    return match.group(1) if match else query


def needs_context(question: str) -> bool:
    words = [w.lower() for w in _WORD.findall(question)]
    if any(w in _REFERRING for w in words) or _FOLLOW_ON.match(question):
        return True
    content = [t for t in tokenize(question) if t not in ("much", "mani", "exact", "actual")]
    return len(content) <= 1


def salient_terms(history: Sequence[Turn], limit: int = 14) -> list[str]:
    """Content words of the last user question, then names and numbers of the last answer."""
    last_user = next((t.content for t in reversed(history) if t.role == "user"), "")
    last_answer = next((t.content for t in reversed(history) if t.role == "assistant"), "")
    terms = [
        w for w in _WORD.findall(last_user) if w.lower() not in STOPWORDS and w.lower() not in _REFERRING
    ]
    answer = _MARKER.sub(" ", last_answer)
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


_PERSONAL = re.compile(r"\b(he|him|his|she|her|hers)\b", re.I)
_PERSON = re.compile(
    r"\b(?:(?:Prof|Professor|Dr|Mr|Mrs|Ms|Sir)\.? )?[A-Z][a-z]+(?: [A-Z][a-z]+){0,2}(?= (?:said|says|wrote|led|left|declined|"
    r"noted|told|argued|is|was|had|has|who)\b)|\b(?:Prof|Professor|Dr|Mr|Mrs|Ms|Sir)\.? [A-Z][a-z]+(?: [A-Z][a-z]+)?|\b\w+@[\w.]+\w"
)


def person_in(history: Sequence[Turn]) -> str:
    """The person the last exchange was about: the first name-like subject of the last answer, else of
    the last question ("Prof Yike Guo", "cyd@lemmy.world")."""
    for turn in reversed(history):
        text = _MARKER.sub(" ", turn.content)
        for match in _PERSON.finditer(text):
            name = match.group(0)
            if name.split()[0].lower() not in STOPWORDS:
                return name
    return ""


class RuleCondenser(Condenser):
    """Resolves "he/she" to the person of the last exchange, and carries the last exchange's salient
    terms into the query in brackets (the evidence scorer weighs them below the question's own words)."""

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        if not history or not needs_context(question):
            return question
        person = person_in(history[-2:])
        if person and _PERSONAL.search(question):
            possessive = {"his": f"{person}'s", "her": f"{person}'s", "hers": f"{person}'s"}
            question = _PERSONAL.sub(lambda m: possessive.get(m.group(1).lower(), person), question, count=1)
        terms = salient_terms(history)
        return f"{question} ({' '.join(terms)})" if terms else question


class NoCondenser(Condenser):
    def condense(self, question: str, history: Sequence[Turn]) -> str:
        return question
