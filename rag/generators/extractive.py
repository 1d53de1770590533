"""The offline default: the answer is composed of verbatim sentences of the passages, each with its marker.

Faithfulness holds by construction; the work is in choosing the sentences: the best-scored evidence
(`rag.evidence`) of each part of the question, then others nearly as good that add question words.
"""

from __future__ import annotations

from collections.abc import Iterator

from rag.answertypes import expected_kind, page_topic
from rag.evidence import Evidence, EvidenceScorer, normalized
from rag.generators.base import REFUSAL, GenerationRequest, Generator
from rag.settings import AnswerSettings
from rag.text import tokenize
from rag.types import context_line


def _overlaps(request: GenerationRequest, a: Evidence, b: Evidence) -> bool:
    """Whether two evidence sentences share characters of the same document."""
    pa, pb = request.passages[a.passage], request.passages[b.passage]
    if pa.metadata.get("path") != pb.metadata.get("path"):
        return False
    return pa.start + a.start < pb.start + b.end and pb.start + b.start < pa.start + a.end


class ExtractiveGenerator(Generator):
    shown_excerpts = False  # reads the passages itself

    def __init__(self, scorer: EvidenceScorer, settings: AnswerSettings, max_sentences: int = 3) -> None:
        self.scorer = scorer
        self.settings = settings
        self.max_sentences = max_sentences

    def select(self, request: GenerationRequest) -> list[Evidence]:
        """The lead sentence of each part of the question, then others nearly as good that cover
        question words not yet covered."""
        question = request.query.question
        assessment = self.scorer.assess(question, request.query.text, request.passages, request.history)
        if not assessment.lead:
            return []
        evidence = assessment.evidence
        chosen: list[Evidence] = []
        for ev in evidence[: assessment.lead]:  # one part's answer may be another's: said once
            if not any(normalized(c.text) == normalized(ev.text) for c in chosen):
                chosen.append(ev)
        best = chosen[0]
        wanted = set(tokenize(question)) or set(tokenize(request.query.text))
        floor = self.settings.keep_ratio * best.score
        covered = {t for ev in chosen for t in tokenize(ev.text)} & wanted
        for ev in evidence[assessment.lead :]:
            if len(chosen) >= self.max_sentences or ev.score < floor:
                break
            if ev.typed is False:
                continue
            if any(_overlaps(request, c, ev) or normalized(c.text) == normalized(ev.text) for c in chosen):
                continue  # the same words again (overlapping chunks, a sentence repeated on two pages)
            new = (set(tokenize(ev.text)) & wanted) - covered
            if new or ev.score >= self.settings.close_ratio * best.score:
                chosen.append(ev)
                covered |= new
        return chosen

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        chosen = self.select(request)
        if not chosen:
            yield REFUSAL
            return
        question = request.query.question
        if page_topic(question):  # "which page covers X?": the page (and section), then what it says
            best = chosen[0]
            where = context_line(request.passages[best.passage].metadata)
            yield f"{where} [{best.passage + 1}]\n\n{best.text} [{best.passage + 1}]"
            return
        # "Who wrote ...?" about an authored passage (a thread comment): its author line answers it.
        asks_who = expected_kind(question) == "name"
        # Sentences of one passage stay together, in document order, under one marker; a sentence that
        # other passages hold word for word (a page copied into another) is said once, with their markers too.
        holders: dict[str, list[int]] = {}  # the passages that hold each sentence
        for e in self.scorer.assess(question, request.query.text, request.passages, request.history).evidence:
            holders.setdefault(normalized(e.text), []).append(e.passage)
        order = list(dict.fromkeys(ev.passage for ev in chosen))
        first = True
        for passage in order:
            meta = request.passages[passage].metadata
            where = context_line(meta)
            if asks_who and meta.get("author") and str(meta["author"]) in where:
                yield ("" if first else "\n\n") + f"{where} [{passage + 1}]"
                first = False
            for ev in sorted((e for e in chosen if e.passage == passage), key=lambda e: e.start):
                also = holders.get(normalized(ev.text), [])
                markers = ", ".join(str(p + 1) for p in dict.fromkeys([ev.passage, *sorted(also)]))
                yield ("" if first else "\n\n") + f"{ev.text} [{markers}]"
                first = False
