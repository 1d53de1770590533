"""The domain's values: `Passage`, `Citation`, `Answer`, `Turn`, and the events an answer streams as."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal


def context_line(meta: dict[str, object]) -> str:
    """Where a chunk sits, as ingest rendered it into its metadata ("Leave types › Annual leave" for a page
    section, the author line of a thread comment); the title when there is none."""
    return str(meta.get("context") or meta.get("title") or "")


def anchor(heading: str) -> str:
    """A heading's fragment id as wikis and Markdown sites make it: "Annual leave (2025)" -> "annual-leave-2025"."""
    words = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"\s+", "-", words)


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk: its id, exact text, metadata and span `[start, end)` in its source document."""

    id: str
    text: str
    metadata: dict[str, Any]
    score: float = 0.0

    @property
    def source(self) -> str:
        return str(self.metadata.get("source", ""))

    @property
    def title(self) -> str:
        return str(self.metadata.get("title", ""))

    @property
    def kind(self) -> str:
        return str(self.metadata.get("kind", ""))

    @property
    def url(self) -> str:
        """The document's web address (front matter `url:`, `rag ingest --base-url`, a pushed or crawled
        page's), with the anchor of the passage's section; "" when it has none or it is not http(s)."""
        url = str(self.metadata.get("meta_url", ""))
        if not url.lower().startswith(("http://", "https://")):
            return ""
        heading = self.section.split(" › ")[-1] if self.section else ""
        return f"{url}#{anchor(heading)}" if heading and "#" not in url else url

    @property
    def author(self) -> str:
        return str(self.metadata.get("author", ""))

    @property
    def section(self) -> str:
        """The headings the passage sits under ("Working remotely › Co-working"); empty when none."""
        return str(self.metadata.get("section", ""))

    @property
    def start(self) -> int:
        return int(self.metadata.get("start", 0))

    @property
    def end(self) -> int:
        return int(self.metadata.get("end", 0))

    def to_json(self) -> dict[str, Any]:
        return {"chunk_id": self.id, "source": self.source, "text": self.text, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Citation:
    """Marker `[n]` of an answer: the passage and the exact quote (span inside the passage) supporting it;
    `spans` holds every quoted span of the passage when the answer quotes more than one of its sentences."""

    marker: int
    passage: Passage
    quote: str
    start: int  # first quote's span inside passage.text
    end: int
    spans: tuple[tuple[int, int], ...] = ()

    @property
    def quotes(self) -> list[str]:
        """Every quoted part of the passage, in the order the answer quotes them."""
        return [self.passage.text[s:e] for s, e in (self.spans or ((self.start, self.end),))]

    def with_span(self, start: int, end: int) -> Citation:
        """This citation, also quoting passage.text[start:end]."""
        spans = self.spans or ((self.start, self.end),)
        if (start, end) in spans:
            return self
        return Citation(self.marker, self.passage, self.quote, self.start, self.end, (*spans, (start, end)))

    def to_json(self) -> dict[str, Any]:
        p = self.passage
        return {
            "marker": self.marker,
            "chunk_id": p.id,
            "source": p.source,
            "title": p.title,
            "kind": p.kind,
            "author": p.author,
            "text": p.text,
            "section": p.section,
            "url": p.url,
            "quote": self.quote,
            "start": self.start,
            "end": self.end,
            "quotes": self.quotes,
        }


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class Query:
    """A question as the answer path reads it: the standalone question, the conversation's terms a
    follow-up carries (retrieval and the reader read them too, the answer's wording does not), and the
    filters the asker chose."""

    question: str
    terms: tuple[str, ...] = ()
    filters: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """What retrieval reads: the question, then the conversation's terms in brackets."""
        return f"{self.question} ({' '.join(self.terms)})" if self.terms else self.question


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    retrieved: list[Passage] = field(default_factory=list)
    related: list[Passage] = field(default_factory=list)  # closest passages of a refusal (not citations)
    query: Query | None = None  # the question as retrieval read it (None: nothing was asked)
    notes: list[str] = field(default_factory=list)  # what verification changed, generator fallbacks
    draft: str = ""  # the generator's text before verification (for evaluation; never shown)
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per stage

    @property
    def latency_ms(self) -> float:
        return round(sum(self.timings.values()), 1)

    def to_json(self) -> dict[str, Any]:
        """The object `rag ask --json` prints."""
        return {
            "question": self.question,
            "answer": self.text,
            "refused": self.refused,
            "citations": [c.to_json() for c in self.citations],
            "retrieved": [p.to_json() for p in self.retrieved],
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True)
class TextDelta:
    text: str
    type: Literal["delta"] = "delta"


@dataclass(frozen=True)
class CitationEvent:
    citation: Citation
    type: Literal["citation"] = "citation"


@dataclass(frozen=True)
class Done:
    answer: Answer
    type: Literal["done"] = "done"


Event = TextDelta | CitationEvent | Done


@dataclass(frozen=True)
class Structured:
    """An answer read off the documents' metadata: text with `[n]` markers into `passages`."""

    text: str
    passages: list[Passage] = field(default_factory=list)
