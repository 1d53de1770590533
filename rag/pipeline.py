"""The answering chain: condense -> retrieve -> (rerank) -> judge answerability -> generate -> verify.

`build_pipeline(settings)` wires the backends named in the settings; `Pipeline.stream` yields events
(text deltas, citations, done) as verified sentences become available; `Pipeline.ask` returns the
finished `Answer`. The CLI, the UI and the HTTP API are shells over these two calls.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rag.answerability import AnswerabilityJudge, Verdict, make_judge
from rag.condense import Condenser, NoCondenser, RuleCondenser
from rag.doctypes import DocumentType, plugins
from rag.errors import EXIT_EMPTY, RagError, UsageError
from rag.evidence import EvidenceScorer
from rag.generators import make_generator
from rag.generators.base import REFUSAL, GenerationRequest, Generator, GeneratorError
from rag.generators.extractive import ExtractiveGenerator
from rag.index.catalog import PUBLISH, Catalog, ingest_lock
from rag.index.embeddings import Embedder, for_index
from rag.index.lexical import LexicalIndex
from rag.index.replica import catch_up, drop_unused, rebuild_lexical, recover
from rag.index.store import Metadata, VectorStore
from rag.orders import asks_about_orders, information_need, report_orders
from rag.reader import make_reader
from rag.retrieval import Filters, Reranker, Retriever, make_reranker, make_retriever
from rag.settings import Settings
from rag.text import MARKERS, sentence_spans, strip_markers
from rag.types import Answer, CitationEvent, Done, Event, Passage, Query, Structured, TextDelta, Turn
from rag.verify import SupportJudge, Verifier, make_support_judge

UNVERIFIABLE = (
    "The documents don't support an answer to this question: no generated sentence could be verified."
)
ORDERS_ONLY = (
    "This message gives instructions but asks nothing about the documents, so there is nothing to answer."
)


class QuestionError(UsageError):
    """An empty or over-long question, or a malformed history."""

    code = "invalid_question"


class EmptyIndexError(RagError):
    """Nothing has been ingested yet."""

    exit_code = EXIT_EMPTY
    status = 503
    code = "empty_index"
    public = "the index is empty: the operator should run `rag ingest`"


def clean_question(question: str, limit: int) -> str:
    """The question without control characters; raises `QuestionError` when empty or over `limit`."""
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t" else ch for ch in question
    )
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    if not cleaned:
        raise QuestionError("the question is empty")
    if len(cleaned) > limit:
        raise QuestionError(f"the question is too long ({len(cleaned)} characters; the limit is {limit})")
    return cleaned


def parse_history(history: Iterable[Any], max_turns: int) -> list[Turn]:
    """Turns from `Turn`s or `{"role", "content"}` dicts; raises `QuestionError` on anything else."""
    turns: list[Turn] = []
    for i, item in enumerate(history):
        if isinstance(item, Turn):
            turns.append(item)
            continue
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
            raise QuestionError(f"history turn {i + 1} must be an object with role 'user' or 'assistant'")
        if not isinstance(item.get("content"), str):
            raise QuestionError(f"history turn {i + 1} needs a text 'content'")
        turns.append(Turn(item["role"], item["content"]))
    return turns[-max_turns:] if max_turns else []


@dataclass
class Pipeline:
    settings: Settings
    embedder: Embedder
    store: VectorStore
    lexical: LexicalIndex
    retriever: Retriever
    reranker: Reranker
    condenser: Condenser
    scorer: EvidenceScorer
    answerability: AnswerabilityJudge
    generator: Generator
    judge: SupportJudge
    fallback: Generator | None = None
    doctypes: list[DocumentType] | None = None

    def __post_init__(self) -> None:
        if self.doctypes is None:
            self.doctypes = plugins(self.lexical)

    def load_model(self) -> None:
        """Load the embedding model now, at start-up, rather than in the first question's answer (the reader
        loads when the pipeline is built)."""
        self.embedder.encode(["warm-up"])

    def ensure_ready(self) -> None:
        if not self.lexical.records and self.store.count() == 0:
            raise EmptyIndexError("the index is empty: run `rag ingest` first")

    def ask(
        self, question: str, history: Sequence[Any] = (), filters: Filters | None = None, k: int | None = None
    ) -> Answer:
        for event in self.stream(question, history, filters, k):
            if isinstance(event, Done):
                return event.answer
        raise RuntimeError("the answer stream ended without an answer")  # pragma: no cover

    def stream(
        self, question: str, history: Sequence[Any] = (), filters: Filters | None = None, k: int | None = None
    ) -> Iterator[Event]:
        question = clean_question(question, self.settings.answer.max_question_chars)
        turns = parse_history(history, self.settings.answer.max_history_turns)
        self.ensure_ready()
        k = k or self.settings.retrieval.k
        answer = Answer(question=question, text="")
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            answer.timings[stage] = round((now - clock) * 1000, 2)
            clock = now

        need = information_need(question)  # orders inside the question are data: not obeyed, not searched
        if not need.strip():
            yield from self._refuse(answer, [], "the message gives orders and asks nothing", ORDERS_ONLY)
            return
        query = answer.query = self.condense(need, turns, filters)
        lap("condense")
        passages = answer.retrieved = self.retrieve(query, k)
        lap("retrieve")
        structured = self.read_structure(need, query, passages)
        context = structured.passages if structured else passages
        if structured is None:
            verdict = self.decide(query, passages, turns)
            lap("judge")
            if not verdict.answerable:
                yield from self._refuse(answer, passages, verdict.reason)
                return
        request = self.request(need, query, context, turns, excerpts=structured is None)
        yield from self.generate(answer, request, structured, passages, asks_about_orders(need), lap)

    # ---- the stages, in order (`stream` runs them; calibration and the ceiling report run the first ones) ----

    def condense(self, need: str, turns: Sequence[Turn], filters: Filters | None = None) -> Query:
        """The question made standalone: a follow-up carries the conversation's terms (or is rewritten by
        an LLM condenser); with the asker's filters."""
        return replace(self.condenser.condense(need, turns), filters=filters or None)

    def retrieve(self, query: Query, k: int) -> list[Passage]:
        """The passages, reranked: with the asker's filters, else with those a document type reads in the
        question (a commenter it names) when they find anything."""
        doctypes = self.doctypes or []
        implied = None if query.filters else next((f for d in doctypes if (f := d.filters(query))), None)
        passages = self.retriever.retrieve(query.text, k, implied) if implied else []
        passages = passages or self.retriever.retrieve(query.text, k, query.filters)
        return self.reranker.rerank(query.text, passages)

    def read_structure(self, need: str, query: Query, passages: list[Passage]) -> Structured | None:
        """An answer read off the documents' structure, or None: the orders they hold when the question
        asks about them, or a document type's (a thread's votes and replies)."""
        if asks_about_orders(need):
            found = report_orders(need, passages) or report_orders(need, self._passages_with_orders())
            if found:
                return found
        return next((a for d in self.doctypes or [] if (a := d.answer(query, passages))), None)

    def decide(self, query: Query, passages: list[Passage], turns: Sequence[Turn]) -> Verdict:
        """Answer or refuse: the judge over the best evidence among the passages."""
        return self.answerability.judge(query.question, query.text, passages, turns)

    def request(
        self, need: str, query: Query, context: list[Passage], turns: Sequence[Turn], excerpts: bool = True
    ) -> GenerationRequest:
        """What the generator is given: the passages, or for a generator shown excerpts (an LLM), each
        passage's most relevant sentences within `generator.context_chars`."""
        budget = self.settings.generator.context_chars
        shown: list[str] = []
        if excerpts and budget and self.generator.shown_excerpts:
            shown = self.scorer.excerpts(query.question, query.text, context, turns, budget)
        return GenerationRequest(need, query, context, turns, shown)

    def generate(
        self,
        answer: Answer,
        request: GenerationRequest,
        structured: Structured | None,
        passages: list[Passage],
        about_orders: bool,
        lap: Callable[[str], None] = lambda stage: None,
    ) -> Iterator[Event]:
        """The answer, sentence by sentence as each is verified against the passage it cites (the
        structured answer's text, or the generator's; the extractive generator's when an LLM fails before
        its first sentence); a refusal when no sentence survives. Orders in the documents may be quoted
        only when the question asks about them (`about_orders`)."""
        pieces = iter([structured.text]) if structured else self.generator.generate(request)
        context = request.passages
        verifier = Verifier(context, self.judge, declines=[REFUSAL], orders=about_orders)
        produced: list[str] = []
        drafted: list[str] = []
        try:
            for delta, citations in self._verified(_recorded(pieces, drafted), verifier):
                produced.append(delta)
                yield TextDelta(delta)
                yield from (CitationEvent(c) for c in citations)
        except GeneratorError as exc:
            if self.fallback is None or produced:
                raise
            answer.notes.append(f"generator failed ({exc}); answered with the extractive generator")
            drafted.clear()
            for delta, citations in self._verified(
                _recorded(self.fallback.generate(request), drafted), verifier
            ):
                produced.append(delta)
                yield TextDelta(delta)
                yield from (CitationEvent(c) for c in citations)
        lap("generate")
        answer.draft = "".join(drafted)
        answer.notes.extend(verifier.notes)
        answer.citations = verifier.citations
        text = "".join(produced).strip()
        if not answer.citations:
            if verifier.declined:
                yield from self._refuse(answer, passages, "the generator found no answer in the passages")
            else:
                yield from self._refuse(
                    answer, passages, "no generated sentence could be verified", UNVERIFIABLE
                )
            return
        answer.text = text
        yield Done(answer)

    def _refuse(
        self, answer: Answer, passages: list[Passage], reason: str, text: str = REFUSAL
    ) -> Iterator[Event]:
        answer.refused = True
        answer.citations = []
        answer.related = _distinct(passages)[:3]
        answer.notes.append(f"refused: {reason}")
        answer.text = text
        yield TextDelta(answer.text)
        yield Done(answer)

    def _verified(self, pieces: Iterable[str], verifier: Verifier) -> Iterator[tuple[str, list[Any]]]:
        """Buffer the generator's pieces; hand on each sentence once complete and verified, keeping the
        generator's paragraph breaks between sentences."""
        pending = ""
        separator = ""  # what goes before the next verified sentence ("" before the first)
        for piece in pieces:
            pending += piece
            spans = [
                (s, e) for s, e in sentence_spans(pending) if re.search(r"\w", strip_markers(pending[s:e]))
            ]
            if len(spans) < 2:
                continue
            cut = spans[-1][0]
            leading = MARKERS.match(pending[cut:])
            cut += leading.end() if leading else 0  # markers after a period belong to the sentence before
            done, pending = pending[:cut], pending[cut:]
            for text, citations in verifier.check_text(done):
                yield separator + text, citations
                separator = _joiner(done)
            if re.search(r"\n\s*\n\s*$", done) and separator:
                separator = "\n\n"
        if pending.strip():
            for text, citations in verifier.check_text(pending):
                yield separator + text, citations
                separator = _joiner(pending)

    def _passages_with_orders(self) -> list[Passage]:
        return [Passage(r.id, r.text, r.metadata) for r in self.lexical.holding_orders()]

    def passage(self, chunk_id: str) -> Passage | None:
        hits = self.store.get([chunk_id])
        return Passage(hits[0].id, hits[0].text, hits[0].metadata) if hits else None


def _recorded(pieces: Iterable[str], into: list[str]) -> Iterator[str]:
    for piece in pieces:
        into.append(piece)
        yield piece


def _distinct(passages: Sequence[Passage]) -> list[Passage]:
    """Passages without repeats of the same document text (overlapping chunks)."""
    seen: set[tuple[str, int]] = set()
    out: list[Passage] = []
    for p in passages:
        key = (str(p.metadata.get("path", p.id)), p.start)
        if key not in seen and not any(
            p.text in q.text or q.text in p.text for q in out if q.source == p.source
        ):
            seen.add(key)
            out.append(p)
    return out


def _joiner(text: str) -> str:
    return "\n\n" if "\n\n" in text else " "


def load_lexical(settings: Settings, store: VectorStore, info: Metadata | None = None) -> LexicalIndex:
    """The persisted lexical index, rebuilt from the store when missing or out of date (another process
    changed the index: `rag.index.replica`); `info`: the store's metadata, when the caller has just read it."""
    if Catalog(settings.catalog_path).state(PUBLISH) is not None:  # a change killed midway: finish it
        with ingest_lock(settings):
            recover(settings, store)
    catch_up(settings, store, info)
    index = LexicalIndex.load(settings.lexical_dir)
    if index is None or len(index.records) != store.count():
        index = rebuild_lexical(settings, store)
    if len(index.records) != store.count():  # chunks of no current version (a change killed midway)
        drop_unused(settings, store)
    return index


def build_pipeline(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    generator: Generator | None = None,
) -> Pipeline:
    """Wire the pipeline from settings. Loads the lexical index; the embedding model loads on first use."""
    store = store or VectorStore(settings)
    info = store.info()  # read once: the embedding that wrote the index, and its version
    embedder = embedder or Embedder(for_index(settings.embedding, info))
    lexical = load_lexical(settings, store, info)
    r, a = settings.retrieval, settings.answer
    retriever = make_retriever(r.retriever, embedder, store, lexical, candidates=r.candidates, rrf_k=r.rrf_k)
    scorer = EvidenceScorer(embedder, lexical, settings.answer, make_reader(a.reader))
    generator = generator or make_generator(settings, scorer)
    extractive = isinstance(generator, ExtractiveGenerator)
    fallback = (
        ExtractiveGenerator(scorer, settings.answer, settings.generator.max_sentences)
        if settings.generator.fallback and not extractive
        else None
    )
    condenser: Condenser = NoCondenser()
    if r.condense:
        condenser = generator.condenser or RuleCondenser()
    return Pipeline(
        settings=settings,
        embedder=embedder,
        store=store,
        lexical=lexical,
        retriever=retriever,
        reranker=make_reranker(r.reranker, r.reranker_model),
        condenser=condenser,
        scorer=scorer,
        answerability=make_judge(settings.answer.judge, scorer, settings.answer, llm=not extractive),
        generator=generator,
        judge=make_support_judge(a.support_judge, embedder, a.support_weights, a.support_threshold),
        fallback=fallback,
    )
