"""Citation verification at answer time: every answer sentence is checked against the passages it cites.

A sentence whose citations do not support it is re-cited to a retrieved passage that does, or removed;
markers that point nowhere never reach the user; every surviving citation carries the exact quote (a span
of the passage) that supports its sentence. The support check is a seam (`SupportJudge`): the default
judges by words and meaning together (content-word recall, embedding similarity, and every number of the
claim present in the quote); an NLI model can plug in behind the same method.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.embeddings import Embedder
from rag.text import sentence_spans, tokenize
from rag.types import Citation, Passage, context_line

MARKERS = re.compile(r"\s*(?:\[\d+(?:\s*,\s*\d+)*\])+")
_LEADING_MARKERS = re.compile(r"^(?:\s*\[\d+(?:\s*,\s*\d+)*\])+")
_MARKER_NUMBERS = re.compile(r"\d+")
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})


@dataclass(frozen=True)
class Support:
    score: float
    start: int  # quote span inside the passage text
    end: int


class SupportJudge(ABC):
    @abstractmethod
    def support(self, claim: str, passage: Passage) -> Support:
        """How well `passage` supports `claim` (0..1), and the span of the passage that does."""


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text.translate(_QUOTES)).strip().lower()


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}


class LexicalEmbeddingJudge(SupportJudge):
    """Exact quotes score 1; otherwise the best window of one or two passage sentences, scored by
    content-word recall and embedding similarity, with every number of the claim required in it."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def support(self, claim: str, passage: Passage) -> Support:
        text = passage.text
        core = claim.strip().strip('“”"').strip()
        at = text.find(core)
        if core and at >= 0:
            return Support(1.0, at, at + len(core))
        windows = []  # (span, is a pair of sentences)
        spans = sentence_spans(text)
        for i, (s, e) in enumerate(spans):
            windows.append(((s, e), False))
            if i + 1 < len(spans):
                windows.append(((s, spans[i + 1][1]), True))
        if not windows:
            return Support(0.0, 0, 0)
        normalized = _normalize(core)
        where = context_line(passage.metadata)
        if normalized and normalized in _normalize(where):  # restates the passage's metadata line
            return Support(1.0, *windows[0][0])
        for (s, e), _ in windows:
            if normalized and normalized in _normalize(text[s:e]):
                return Support(1.0, s, e)
        claim_tokens = set(tokenize(core))
        header = set(tokenize(where))
        claim_numbers = _numbers(core)
        vectors = self.embedder.encode_cached([core, *(text[s:e] for (s, e), _ in windows)])
        best = Support(0.0, *windows[0][0])
        for ((s, e), pair), vector in zip(windows, vectors[1:], strict=True):
            window = text[s:e]
            if not claim_numbers <= _numbers(window) | _numbers(where):
                continue  # a number the passage does not state is the commonest invented detail
            tokens = set(tokenize(window)) | header
            recall = len(claim_tokens & tokens) / len(claim_tokens) if claim_tokens else 0.0
            score = 0.5 * recall + 0.5 * float(vector @ vectors[0]) + (0.05 if claim_numbers else 0.0)
            score -= 0.05 if pair else 0.0  # a second sentence must earn its place in the quote
            if score > best.score:
                best = Support(min(score, 1.0), s, e)
        return best


def _numbers_in(markers: str) -> list[int]:
    return [int(n) for m in MARKERS.finditer(markers) for n in _MARKER_NUMBERS.findall(m.group(0))]


def split_claims(text: str) -> list[tuple[str, list[int]]]:
    """Answer sentences with the marker numbers they carry. Markers after a sentence's final period
    ("... 2021. [1]") belong to that sentence, not to the next."""
    claims: list[tuple[str, list[int]]] = []
    for s, e in sentence_spans(text):
        piece = text[s:e]
        leading = _LEADING_MARKERS.match(piece)
        if leading and claims:
            claims[-1][1].extend(_numbers_in(leading.group(0)))
            piece = piece[leading.end() :]
        markers = _numbers_in(piece)
        bare = MARKERS.sub("", piece).strip()
        if re.search(r"\w", bare):
            claims.append((bare, markers))
        elif claims:
            claims[-1][1].extend(markers)
    return claims


class Verifier:
    """Verifies an answer claim by claim (so that it can stream), numbering citations as they appear.

    Markers in the generator's text are 1-based passage numbers; the verified text's markers number the
    cited passages in order of first appearance: one passage, one marker, however many of its sentences
    the answer quotes (the citation keeps every quoted span). A passage whose quoted text is the same part
    of the same document as one already cited (overlapping chunks) takes that one's marker.
    """

    def __init__(
        self,
        passages: Sequence[Passage],
        judge: SupportJudge,
        threshold: float = 0.62,
        declines: Sequence[str] = (),
    ) -> None:
        self.passages = passages
        self.judge = judge
        self.threshold = threshold
        self.declines = {d.strip().rstrip(".") for d in declines}  # "the documents don't say" sentences
        self.declined = False
        self.citations: list[Citation] = []
        self.notes: list[str] = []
        self.removed: list[str] = []
        self._numbering: dict[str, int] = {}  # passage id -> marker
        self._spans: dict[tuple[str, int, int], int] = {}  # (document, start, end) quoted -> marker

    def check_text(self, text: str) -> Iterator[tuple[str, list[Citation]]]:
        """Each surviving claim of `text`, rendered with its citation markers, and its new citations (or a
        cited passage's citation again, with the further quote it gained)."""
        for claim, markers in split_claims(text):
            checked = self.check(claim, markers)
            if checked is not None:
                yield checked

    def check(self, claim: str, markers: list[int]) -> tuple[str, list[Citation]] | None:
        if claim.strip().rstrip(".") in self.declines:
            self.declined = True
            return None
        if claim.rstrip().endswith(":") and not markers and len(claim) < 80:
            return claim, []  # a heading ("Comments marked as edited:"), not a claim
        passages = self.passages
        cited = [m for m in dict.fromkeys(markers) if 1 <= m <= len(passages)]
        if len(cited) < len(set(markers)):
            self.notes.append(f"dropped marker(s) pointing at no passage in: {claim[:60]}")
        good = [
            (m, sup)
            for m in cited
            if (sup := self.judge.support(claim, passages[m - 1])).score >= self.threshold
        ]
        if not good:
            scored = [(m, self.judge.support(claim, p)) for m, p in enumerate(passages, 1) if m not in cited]
            best = max(scored, key=lambda ms: ms[1].score, default=None)
            if best and best[1].score >= self.threshold:
                good = [best]
                if markers:
                    self.notes.append(f"re-cited [{best[0]}] for: {claim[:60]}")
            elif not markers and len(tokenize(claim)) < 3:
                return claim, []  # a connective phrase, not a claim
            else:
                self.removed.append(claim)
                self.notes.append(f"removed unsupported sentence: {claim[:60]}")
                return None
        labels: list[str] = []
        new: list[Citation] = []
        for m, support in good:
            passage = passages[m - 1]
            document = str(passage.metadata.get("path", passage.id))
            span = (document, passage.start + support.start, passage.start + support.end)
            marker = self._numbering.get(passage.id) or self._spans.get(span)
            if marker is None:
                marker = len(self._numbering) + 1
                self._numbering[passage.id] = marker
                quote = passage.text[support.start : support.end]
                citation = Citation(marker, passage, quote, support.start, support.end)
                self.citations.append(citation)
                new.append(citation)
            else:
                self._numbering.setdefault(passage.id, marker)
                at = next(i for i, c in enumerate(self.citations) if c.marker == marker)
                updated = self.citations[at].with_span(support.start, support.end)
                if updated is not self.citations[at]:  # a further quote of a cited passage: sent again
                    self.citations[at] = updated
                    new.append(updated)
            self._spans.setdefault(span, marker)
            label = f"[{marker}]"
            if label not in labels:
                labels.append(label)
        return f"{claim} {''.join(labels)}", new


def verify(text: str, passages: Sequence[Passage], judge: SupportJudge) -> tuple[str, Verifier]:
    """Verify a whole answer at once: the verified text, and the verifier with citations and notes."""
    verifier = Verifier(passages, judge)
    joiner = "\n\n" if "\n\n" in text else " "
    return joiner.join(rendered for rendered, _ in verifier.check_text(text)), verifier
