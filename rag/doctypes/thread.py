"""Forum threads: questions about a thread's structure, answered from its comments' metadata.

"Which comments are marked as edited?", "Whose comment got the most downvotes?", "Who is the original
poster?", "How many upvotes did X's comment get?", "Who replied to X?" are not answered by any sentence of
the text: the answer is in the metadata the thread parser recorded (author, votes, edited flag, OP flag,
reply-to). Each matching comment is cited by its own passage, and the claim is the comment's metadata line
(written by ingest into the chunk's `context`), which the verifier checks against that passage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rag.doctypes.base import DocumentType
from rag.text import split_question
from rag.types import Passage, Query, Structured, context_line

_LISTINGS: list[tuple[str, re.Pattern[str]]] = [
    (
        "not_edited",
        re.compile(
            r"\b(comments?|posts?|repl(y|ies))\b.*\b(not|n't|never|un)[- ]?(marked as )?edited\b", re.I
        ),
    ),
    (
        "edited",
        re.compile(r"\b(which|whose|what|any) (\w+ )?(comments?|posts?|repl(y|ies))\b.*\bedited\b", re.I),
    ),
    (
        "most_up",
        re.compile(
            r"\b(most|highest|top|best)[- ](up-?votes?|upvoted|score|scored|liked|popular)|\bmost up-?votes\b",
            re.I,
        ),
    ),
    (
        "most_down",
        re.compile(
            r"\b(most|highest)[- ](down-?votes?|downvoted|disliked)|\b(lowest|worst)[- ](score|scored)|\bmost down-?votes\b|\bleast popular\b",
            re.I,
        ),
    ),
    (
        "op",
        re.compile(
            r"^\W*(who|which (user|commenter|person|account))\s+(is|was|started|posted)\s+(the\s+)?"
            r"(original poster|OP|thread|original post)\b",
            re.I,
        ),
    ),
]
INTRO = {
    "not_edited": "Comments not marked as edited:",
    "edited": "Comments marked as edited:",
    "most_up": "Most upvoted comment:",
    "most_down": "Most downvoted comment:",
    "op": "Comments by the original poster:",
}


def listing_kind(question: str) -> str | None:
    """Which structural question this is, if any."""
    for kind, pattern in _LISTINGS:
        if pattern.search(question):
            return kind
    return None


def comments_of(passages: Sequence[Passage]) -> list[Passage]:
    """The first passage of each comment, in thread order."""
    first: dict[tuple[str, int], Passage] = {}
    for p in passages:
        if p.kind == "comment":
            key = (str(p.metadata.get("path", "")), int(p.metadata.get("comment", 0)))
            if key not in first or p.start < first[key].start:
                first[key] = p
    return [first[k] for k in sorted(first)]


def select(kind: str, comments: Sequence[Passage]) -> list[Passage]:
    """The comments that answer a structural question of this kind."""
    meta = [c.metadata for c in comments]
    if kind == "edited":
        return [c for c, m in zip(comments, meta, strict=True) if m.get("edited")]
    if kind == "not_edited":
        return [c for c, m in zip(comments, meta, strict=True) if not m.get("edited")]
    if kind == "op":
        return [c for c, m in zip(comments, meta, strict=True) if m.get("is_op")]
    if not comments:
        return []
    field = "upvotes" if kind == "most_up" else "downvotes"
    top = max(int(m.get(field, 0)) for m in meta)
    return [c for c, m in zip(comments, meta, strict=True) if int(m.get(field, 0)) == top]


_OP = re.compile(r"\b(the OP|OP's|original poster)\b|\bOP\b", re.I)
_REPLY_TO = r"\b(?:replied|responded|reply|replies|responding|answered) to {who}"


def implied_filters(question: str, authors: set[str]) -> dict[str, object] | None:
    """Metadata filters a question implies about a thread: "What did cyd say?" searches cyd's comments,
    "Who replied to TheGrandNagus?" the replies to TheGrandNagus, "What did the OP say?" the original
    poster's. None when the question names no commenter."""
    for author in sorted(authors, key=len, reverse=True):
        local = author.split("@")[0]
        who = rf"(?:{re.escape(author)}|{re.escape(local)})(?:['’]s)?"
        if re.search(_REPLY_TO.format(who=who), question, re.I):
            return {"parent_author": author}
        if re.search(rf"(?<![\w@]){who}(?![\w@])", question, re.I):
            return {"author": author}
    if _OP.search(question):
        return {"is_op": True}
    return None


_VOTES = re.compile(r"\b(up|down)?-?votes?\b|\bupvot|\bdownvot|\bscore[ds]?\b", re.I)
_RELATION = re.compile(
    r"\b(repl(y|ied|ies|ying)|respond(ed|ing)?|answer(ed|ing)) to\b|\bwho (replied|responded|answered)\b",
    re.I,
)


class ThreadType(DocumentType):
    def __init__(self, comments: Sequence[Passage]) -> None:
        self.comments = list(comments)
        self.authors = {c.author for c in self.comments if c.author}

    def filters(self, query: Query) -> dict[str, Any] | None:
        return implied_filters(query.text, self.authors)

    def answer(self, asked: Query, passages: list[Passage]) -> Structured | None:
        question = asked.question
        kinds = [kind for part in split_question(question) if (kind := listing_kind(part))]
        if kinds:
            paths = {p.metadata.get("path") for p in passages if p.kind == "comment"}
            comments = comments_of([c for c in self.comments if not paths or c.metadata.get("path") in paths])
            cited: list[Passage] = []
            lines = []
            for kind in kinds:
                found = select(kind, comments)
                if not found:
                    continue
                lines.append(INTRO[kind])
                for c in found:
                    if c not in cited:
                        cited.append(c)
                    lines.append(f"{context_line(c.metadata)}. [{cited.index(c) + 1}]")
            return Structured("\n\n".join(lines), cited) if cited else None
        filtered = [p for p in passages if p.kind == "comment"]
        if not filtered or not self.filters(asked):
            return None
        if _VOTES.search(question):  # the votes of the comment the question names
            return Structured(f"{context_line(filtered[0].metadata)}. [1]", filtered[:1])
        if _RELATION.search(question):  # who replied to whom
            found = comments_of(filtered)
            lines = [f"{context_line(c.metadata)}. [{n}]" for n, c in enumerate(found, 1)]
            return Structured("\n\n".join(lines), found)
        return None
