"""The offline default: the answer is composed of verbatim sentences of the passages, each with its marker.

Faithfulness holds by construction; the work is in choosing the sentences (see `rag.evidence`) and saying
who said what for thread comments.
"""

from __future__ import annotations

from collections.abc import Iterator

from ingest.sentences import sentence_spans
from rag.condense import standalone_question
from rag.evidence import Evidence
from rag.generators.base import REFUSAL, GenerationRequest, Generator
from rag.lexical import tokenize
from rag.threadfacts import INTRO
from rag.types import Passage


def attribution(passage: Passage) -> str:
    """'cyd@lemmy.world (3 up, 12 down; replying to TheGrandNagus@lemmy.world)' for a thread comment."""
    meta = passage.metadata
    details = [f"{meta.get('upvotes', 0)} up, {meta.get('downvotes', 0)} down"]
    if meta.get("is_op"):
        details.insert(0, "the original poster")
    if meta.get("parent_author"):
        details.append(f"replying to {meta['parent_author']}")
    if meta.get("edited"):
        details.append("edited")
    return f"{passage.author} ({'; '.join(details)})"


def _overlaps(request: GenerationRequest, a: Evidence, b: Evidence) -> bool:
    """Whether two evidence sentences share characters of the same document."""
    pa, pb = request.passages[a.passage], request.passages[b.passage]
    if pa.metadata.get("path") != pb.metadata.get("path"):
        return False
    return pa.start + a.start < pb.start + b.end and pb.start + b.start < pa.start + a.end


class ExtractiveGenerator(Generator):
    def __init__(self, max_sentences: int = 3, keep_ratio: float = 0.6, close_ratio: float = 0.85) -> None:
        self.max_sentences = max_sentences
        self.keep_ratio = keep_ratio  # a sentence adding question words must score this share of the best
        self.close_ratio = close_ratio  # a sentence scoring this share of the best is kept anyway

    def select(self, request: GenerationRequest) -> list[Evidence]:
        """The best sentence, then others nearly as good that cover question words not yet covered."""
        if not request.evidence:
            return []
        lead = max(1, request.lead)
        chosen = list(request.evidence[:lead])
        best = chosen[0]
        question = standalone_question(request.query) if request.history else request.question
        wanted = set(tokenize(question)) or set(tokenize(request.query))
        floor = max(self.keep_ratio * best.score, 0.35)
        covered = {t for ev in chosen for t in tokenize(ev.text)} & wanted
        for ev in request.evidence[lead:]:
            if len(chosen) >= self.max_sentences or ev.score < floor:
                break
            new = (set(tokenize(ev.text)) & wanted) - covered
            overlapping = [c for c in chosen if _overlaps(request, c, ev)]
            if overlapping:  # the same words as a sentence already chosen (overlapping chunks, or a
                # sentence together with the one before it that it refers to): keep the longer
                shorter = overlapping[0]
                if (
                    len(overlapping) == 1
                    and len(ev.text) > len(shorter.text)
                    and ev.text.find(shorter.text) >= 0
                ):
                    chosen[chosen.index(shorter)] = ev
                continue
            close = ev.score >= self.close_ratio * best.score
            if new or close or (ev.typed and not any(c.typed for c in chosen)):
                chosen.append(ev)
                covered |= new
        return chosen

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        chosen = self.select(request)
        if not chosen and not request.listings:
            yield REFUSAL
            return
        pieces = 0
        for kind, found in request.listings:
            yield ("\n\n" if pieces else "") + INTRO[kind]
            for i in found:
                passage = request.passages[i]
                first = passage.text[: (sentence_spans(passage.text) or [(0, len(passage.text))])[0][1]]
                yield f"\n\n{attribution(passage)} wrote: “{first}” [{i + 1}]"
            pieces += 1
        quoted_authors: set[str] = set()
        for n, ev in enumerate(chosen, pieces):
            passage = request.passages[ev.passage]
            marker = f"[{ev.passage + 1}]"
            if passage.kind == "comment":  # one attributed quote a sentence, so each is verified alone
                quotes = []
                for s, e in sentence_spans(ev.text) or [(0, len(ev.text))]:
                    who = passage.author
                    lead = f"{who} also wrote" if who in quoted_authors else f"{attribution(passage)} wrote"
                    quoted_authors.add(who)
                    quotes.append(f"{lead}: “{ev.text[s:e]}” {marker}")
                piece = "\n\n".join(quotes)
            else:
                piece = f"{ev.text} {marker}"
            yield piece if n == 0 else "\n\n" + piece
