"""Citation verification at answer time: every answer sentence is checked against the passages it cites.

A sentence whose citations do not support it is re-cited to a retrieved passage that does, or removed;
markers that point nowhere never reach the user; every surviving citation carries the exact quote (a span
of the passage) that supports its sentence. The support check is a seam (`SupportJudge`). At answer time,
`CalibratedJudge` weighs meaning together with consistency (content-word recall, embedding similarity,
paraphrase-tolerant coverage, the claim's names present, negation agreeing, every number of the claim in
the quote) by a logistic model fitted on labelled (sentence, passage) pairs from real model runs
(`python -m evals.support`, `evals/support/`). `LexicalEmbeddingJudge`, its fixed ancestor, is what the
evaluation measures citations with. An NLI model can plug in behind the same method.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.index.embeddings import Embedder
from rag.maths import logistic, soft_coverage
from rag.orders import document_name, is_order
from rag.text import MARKERS, sentence_spans, split_sentences, tokenize
from rag.types import Citation, Passage, context_line

_MARKER_NUMBERS = re.compile(r"\d+")
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})


@dataclass(frozen=True)
class Support:
    score: float
    start: int  # quote span inside the passage text
    end: int


class SupportJudge(ABC):
    threshold: float = 0.62  # the score from which a passage supports a claim

    @abstractmethod
    def support(self, claim: str, passage: Passage) -> Support:
        """How well `passage` supports `claim` (0..1), and the span of the passage that does."""


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text.translate(_QUOTES)).strip().lower()


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}


def _windows(text: str) -> list[tuple[tuple[int, int], bool]]:
    """Spans of each sentence and each pair of adjacent sentences (flagged True)."""
    spans = sentence_spans(text)
    windows = []
    for i, (s, e) in enumerate(spans):
        windows.append(((s, e), False))
        if i + 1 < len(spans):
            windows.append(((s, spans[i + 1][1]), True))
    return windows


_ATTRIBUTED = re.compile(r'^(?P<lead>[^"“]{3,120}?)[:,]?\s*[“"](?P<quote>[^"”]+)[”"]\W*$')


def _verbatim(claim: str, passage: Passage) -> Support | None:
    """Full support for a claim the passage states word for word (or its metadata line does), or that
    quotes it word for word after naming its document ('The document notes.md says: "..."')."""
    text = passage.text
    attributed = _ATTRIBUTED.match(claim.strip())
    if attributed and document_name(passage).lower() in attributed["lead"].lower():
        quote = attributed["quote"].strip()
        if (at := text.find(quote)) >= 0:
            return Support(1.0, at, at + len(quote))
    core = claim.strip().strip('“”"').strip()
    at = text.find(core)
    if core and at >= 0:
        return Support(1.0, at, at + len(core))
    windows = _windows(text)
    normalized = _normalize(core)
    if not windows or not normalized:
        return None
    if normalized in _normalize(context_line(passage.metadata)):  # restates the passage's metadata line
        return Support(1.0, *windows[0][0])
    for (s, e), _ in windows:
        if normalized in _normalize(text[s:e]):
            return Support(1.0, s, e)
    return None


class LexicalEmbeddingJudge(SupportJudge):
    """Exact quotes score 1; otherwise the best window of one or two passage sentences, scored by
    content-word recall and embedding similarity, with every number of the claim required in it."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def support(self, claim: str, passage: Passage) -> Support:
        verbatim = _verbatim(claim, passage)
        if verbatim is not None:
            return verbatim
        text = passage.text
        windows = _windows(text)
        if not windows:
            return Support(0.0, 0, 0)
        core = claim.strip().strip('“”"').strip()
        where = context_line(passage.metadata)
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


NEGATIONS = frozenset("not no never none nobody nothing neither nor cannot without".split())
_WORDS = re.compile(r"[\w’'-]+")
SUPPORT_FEATURES = ("recall", "similarity", "soft_coverage", "names_missing", "negation_differs", "pair")


def _negated(text: str) -> bool:
    words = {w.lower().replace("’", "'") for w in _WORDS.findall(text)}
    return bool(words & NEGATIONS) or any(w.endswith("n't") for w in words)


def _names(text: str) -> set[str]:
    """Capitalised words after the first: the names, places and titles a claim states."""
    words = _WORDS.findall(text)
    return {w.lower() for w in words[1:] if w[:1].isupper() and w.lower() not in NEGATIONS and w != "I"}


class CalibratedJudge(SupportJudge):
    """Exact quotes score 1; otherwise the best window of one or two passage sentences, scored by a
    logistic model over `SUPPORT_FEATURES` (weights: bias first), with every number of the claim required
    in it."""

    def __init__(self, embedder: Embedder, weights: Sequence[float], threshold: float = 0.5) -> None:
        if len(weights) != len(SUPPORT_FEATURES) + 1:
            raise ValueError(f"support weights need {len(SUPPORT_FEATURES) + 1} values (bias first)")
        self.embedder = embedder
        self.weights = list(weights)
        self.threshold = threshold

    def support(self, claim: str, passage: Passage) -> Support:
        verbatim = _verbatim(claim, passage)
        if verbatim is not None:
            return verbatim
        scored = self.features(claim, passage)
        if not scored:
            return Support(0.0, 0, 0)
        span, probability = max(((span, self.probability(f)) for span, f in scored), key=lambda item: item[1])
        return Support(probability, *span)

    def probability(self, features: Sequence[float]) -> float:
        z = self.weights[0] + sum(w * x for w, x in zip(self.weights[1:], features, strict=True))
        return logistic(z)

    def features(self, claim: str, passage: Passage) -> list[tuple[tuple[int, int], list[float]]]:
        """`SUPPORT_FEATURES` of each window of the passage that states every number of the claim."""
        import numpy as np

        text = passage.text
        core = MARKERS.sub("", claim).strip().strip('“”"').strip()
        where = context_line(passage.metadata)
        numbers = _numbers(core)
        windows = [
            (span, pair)
            for span, pair in _windows(text)
            if numbers <= _numbers(text[span[0] : span[1]]) | _numbers(where)
        ]
        if not core or not windows:
            return []
        words = list(dict.fromkeys(tokenize(core, stem=False)))
        stems = {w: (tokenize(w) or [w])[0] for w in words}
        names, negated = _names(core), _negated(core)
        header = tokenize(where, stem=False)
        window_words = [
            list(dict.fromkeys([*tokenize(text[s:e], stem=False), *header])) for (s, e), _ in windows
        ]
        vocabulary = list(dict.fromkeys(w for ws in window_words for w in ws if not w.isdigit()))
        vectors = self.embedder.encode_cached([core, *(text[s:e] for (s, e), _ in windows)])
        lexicon = self.embedder.encode_cached([*words, *vocabulary]) if words and vocabulary else None
        index = {w: i for i, w in enumerate(vocabulary)}
        out = []
        for ((s, e), pair), vector, present in zip(windows, vectors[1:], window_words, strict=True):
            window = text[s:e]
            present_stems = {(tokenize(w) or [w])[0] for w in present}
            found = {w for w in words if stems[w] in present_stems}
            recall = len(found) / len(words) if words else 0.0
            credit = dict.fromkeys(found, 1.0)
            rows = [len(words) + index[w] for w in present if w in index]
            if lexicon is not None and rows:  # a word the window lacks: its nearest word there
                sims = lexicon[: len(words)] @ lexicon[rows].T
                for i, w in enumerate(words):
                    credit.setdefault(w, float(max(0.0, np.max(sims[i]))))
            soft = soft_coverage(words, credit)
            lowered = {w.lower() for w in _WORDS.findall(window + " " + where)}
            missing = len(names - lowered) / len(names) if names else 0.0
            differs = 1.0 if negated != _negated(window) else 0.0
            features = [recall, float(vector @ vectors[0]), soft, missing, differs, 1.0 if pair else 0.0]
            out.append(((s, e), features))
        return out


SUPPORT_JUDGES = ("calibrated", "lexical")


def make_support_judge(
    name: str, embedder: Embedder, weights: Sequence[float], threshold: float
) -> SupportJudge:
    """The judge named; `weights` and `threshold` are the calibrated judge's (the lexical one keeps its
    hand-set 0.62)."""
    if name == "calibrated":
        return CalibratedJudge(embedder, weights, threshold)
    if name == "lexical":
        return LexicalEmbeddingJudge(embedder)
    raise ValueError(f"unknown support judge {name!r}; known: {', '.join(SUPPORT_JUDGES)}")


def _numbers_in(markers: str) -> list[int]:
    return [int(n) for m in MARKERS.finditer(markers) for n in _MARKER_NUMBERS.findall(m.group(0))]


def split_claims(text: str) -> list[tuple[str, list[int]]]:
    """Answer sentences with the marker numbers they carry. Markers after a sentence's final period
    ("... 2021. [1]") belong to that sentence, not to the next."""
    claims: list[tuple[str, list[int]]] = []
    for s, e in sentence_spans(text):
        piece = text[s:e]
        leading = MARKERS.match(piece)
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
        threshold: float | None = None,
        declines: Sequence[str] = (),
        orders: bool = False,
    ) -> None:
        self.passages = passages
        self.orders = orders  # may a quote be an order to the assistant (the question asks about them)?
        self.judge = judge
        self.threshold = judge.threshold if threshold is None else threshold
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

    def _supports(self, support: Support, marker: int) -> bool:
        """Enough support, from a quote that gives the assistant no orders (unless those are asked about)."""
        if support.score < self.threshold:
            return False
        quoted = self.passages[marker - 1].text[support.start : support.end]
        return self.orders or not any(is_order(s) for s in split_sentences(quoted))

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
            (m, sup) for m in cited if self._supports(sup := self.judge.support(claim, passages[m - 1]), m)
        ]
        if not good:
            scored = [(m, self.judge.support(claim, p)) for m, p in enumerate(passages, 1) if m not in cited]
            scored = [(m, s) for m, s in scored if self._supports(s, m)]
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
