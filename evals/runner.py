"""Run a dataset through the same pipeline as `rag ask`, under one or more named configurations."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evals.dataset import EvalCase
from evals.metrics import (
    CaseScore,
    Sentence,
    citation_scores,
    evidence_recall,
    fact_recall,
    gold_citations,
    reciprocal_rank,
    summarize,
)
from rag.index.embeddings import Embedder
from rag.index.store import VectorStore
from rag.settings import Settings
from rag.types import Answer, Passage
from rag.verify import LexicalEmbeddingJudge, split_claims

if TYPE_CHECKING:
    from evals.suites import Suite
    from ingest.indexer import IngestReport
    from rag.evidence import Evidence
    from rag.pipeline import Pipeline

# Named configurations: overrides of the settings' sections.
CONFIGS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {},
    "hybrid": {"retrieval": {"retriever": "hybrid"}},
    "dense": {"retrieval": {"retriever": "dense"}},
    "bm25": {"retrieval": {"retriever": "bm25"}},
    "no-condense": {"retrieval": {"condense": False}},
    "extractive": {"generator": {"name": "extractive"}},
    "openai": {"generator": {"name": "openai"}},
    "openai-gated": {"generator": {"name": "openai"}, "answer": {"judge": "evidence"}},
}
EVAL_SUPPORT_THRESHOLD = 0.7  # stricter than answer-time verification (0.62)


class UnknownConfig(ValueError):
    """A configuration name that is not in CONFIGS."""


def config_settings(base: Settings, name: str) -> Settings:
    if name not in CONFIGS:
        raise UnknownConfig(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}")
    update = {
        section: getattr(base, section).model_copy(update=values) for section, values in CONFIGS[name].items()
    }
    return base.model_copy(update=update)


@dataclass
class RunResult:
    config: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # case id + the `rag ask --json` fields
    scores: list[CaseScore] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        return summarize(self.scores)


def make_support(
    judge: LexicalEmbeddingJudge, threshold: float = EVAL_SUPPORT_THRESHOLD
) -> Callable[[str, Sequence[Passage]], bool]:
    def supports(sentence: str, passages: Sequence[Passage]) -> bool:
        if len(passages) == 1:
            return judge.support(sentence, passages[0]).score >= threshold
        merged = Passage(
            "+".join(p.id for p in passages),
            "\n\n".join(p.text for p in passages),
            dict(passages[0].metadata),
        )
        return any(judge.support(sentence, p).score >= threshold for p in (*passages, merged))

    return supports


def score_case(
    case: EvalCase, answer: Answer, k: int, supports: Callable[[str, Sequence[Passage]], bool]
) -> CaseScore:
    retrieved = [p.text for p in answer.retrieved]
    by_marker = {c.marker: c.passage for c in answer.citations}
    sentences = [
        Sentence(text, [by_marker[m] for m in dict.fromkeys(markers) if m in by_marker])
        for text, markers in split_claims(answer.text)
        if not (text.endswith(":") and not markers)  # a heading, not a claim
    ]
    recall, precise, total = citation_scores(sentences, supports) if not answer.refused else (0.0, 0.0, 0)
    gold_matched, gold_total = (
        gold_citations(case, [quote for c in answer.citations for quote in c.quotes])
        if case.answerable and case.evidence and not answer.refused
        else (0, 0)
    )
    return CaseScore(
        id=case.id,
        answerable=case.answerable,
        refused=answer.refused,
        fact_recall=fact_recall(case, answer.text, answer.refused) if case.answerable else None,
        evidence_recall=evidence_recall(case, retrieved, k) if case.answerable and case.evidence else None,
        reciprocal_rank=reciprocal_rank(case, retrieved) if case.answerable and case.evidence else None,
        citation_recall=None if answer.refused else recall,
        precise_citations=precise,
        citations=total,
        latency_ms=answer.latency_ms,
        gold_matched=gold_matched,
        gold_citations=gold_total,
    )


def reading(
    evidence: Sequence[Evidence], asked: str, quotes: Sequence[str], embedder: Embedder
) -> tuple[float, bool, bool, bool]:
    """(the reader's best probability among the evidence sentences, whether its best sentence matches a
    gold quote, whether plain cosine's best does, whether any does); no hits without `quotes`."""
    from evals.metrics import quote_matches_gold

    best = max(range(len(evidence)), key=lambda i: evidence[i].reader)
    if not quotes:
        return evidence[best].reader, False, False, False
    gold = [any(quote_matches_gold(ev.text, q) for q in quotes) for ev in evidence]
    vectors = embedder.encode_cached([asked, *(ev.text for ev in evidence)])
    return evidence[best].reader, gold[best], gold[int((vectors[1:] @ vectors[0]).argmax())], any(gold)


def read_case(pipeline: Pipeline, case: EvalCase, answer: Answer) -> dict[str, Any]:
    """The reader on the sentences the answerer saw of `case` (`CaseScore.reader_hit`, `cosine_hit`,
    `reader_best`); nothing without a reader or retrieved passages."""
    from rag.pipeline import parse_history

    query = answer.query
    if pipeline.scorer.reader is None or not answer.retrieved or query is None:
        return {}
    turns = parse_history(case.history, pipeline.settings.answer.max_history_turns)
    evidence = pipeline.scorer.score(query.question, query.text, answer.retrieved, turns)
    if not evidence:
        return {}
    asked = query.text  # as the reader read it
    quotes = case.evidence if case.answerable else []
    best, reader_hit, cosine_hit, _ = reading(evidence, asked, quotes, pipeline.embedder)
    if not quotes:
        return {"reader_best": best}
    return {"reader_best": best, "reader_hit": reader_hit, "cosine_hit": cosine_hit}


def run(
    cases: Sequence[EvalCase],
    settings: Settings,
    configs: Sequence[str] = ("default",),
    k: int | None = None,
    *,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[RunResult]:
    """Every case under every configuration. Errors are recorded per case, not raised."""
    from rag.pipeline import build_pipeline

    embedder = embedder or Embedder(settings.embedding)
    store = store or VectorStore(settings)
    supports = make_support(LexicalEmbeddingJudge(embedder))
    results = []
    for name in configs:
        config = config_settings(settings, name)
        if k:
            config = config.model_copy(update={"retrieval": config.retrieval.model_copy(update={"k": k})})
        pipeline = build_pipeline(config, embedder=embedder, store=store)
        result = RunResult(name)
        for i, case in enumerate(cases, 1):
            started = time.perf_counter()
            try:
                answer = pipeline.ask(case.question, case.history)
            except Exception as exc:  # recorded per case: one failing case must not end the run
                elapsed = (time.perf_counter() - started) * 1000
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                result.rows.append({"id": case.id, "error": error})
                result.scores.append(
                    CaseScore(case.id, case.answerable, False, None, None, None, None, 0, 0, elapsed, error)
                )
            else:
                result.rows.append(
                    {"id": case.id, **answer.to_json(), "draft": answer.draft, "notes": answer.notes}
                )
                result.answers[case.id] = answer
                score = score_case(case, answer, config.retrieval.k, supports)
                result.scores.append(replace(score, **read_case(pipeline, case, answer)))
            if progress:
                progress(name, i, len(cases))
        results.append(result)
    return results


@dataclass
class SuiteRun:
    """One suite of `evals/suites.toml` run under one or more configurations."""

    suite: Suite
    cases: list[EvalCase]
    results: list[RunResult] = field(default_factory=list)


@dataclass
class TemporaryIndex:
    """A corpus ingested into a data dir of its own: settings pointing at it, and the ingest's report."""

    settings: Settings
    store: VectorStore
    report: IngestReport

    def texts(self) -> list[str]:
        """The text of every document of the index, as loaded (`ingest.loaders.load_document`)."""
        return corpus_texts(self.settings)


def corpus_texts(settings: Settings) -> list[str]:
    """The text of every document in the catalog of `settings`' index (the loaders' output)."""
    from rag.index.catalog import Catalog

    catalog = Catalog(settings.catalog_path)
    return [d.text for d in (catalog.get(r.path) for r in catalog.documents()) if d]


@contextlib.contextmanager
def temporary_index(
    corpus: Path, settings: Settings, *, embedder: Embedder | None = None
) -> Iterator[TemporaryIndex]:
    """Ingest `corpus` into a temporary data dir (an embedded store, whatever `settings` say) and delete it
    afterwards. Raises what `ingest.indexer.ingest` raises."""
    from ingest.indexer import ingest

    with tempfile.TemporaryDirectory(prefix="rag-eval-", ignore_cleanup_errors=True) as tmp:
        local = settings.model_copy(update={"data_dir": Path(tmp) / "data", "chroma_url": None})
        store = VectorStore(local)
        report = ingest([corpus], local, embedder=embedder, store=store)
        yield TemporaryIndex(local, store, report)
