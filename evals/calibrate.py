"""Fit the answerer's deciding constants on the tuning suites: `rag eval --calibrate`.

Two steps, both re-runnable by anyone, on the suites whose role is "tuning" (held-out suites are never
read here):
1. Evidence weights (`answer.w_similarity`, `w_coverage`, `w_context`, `untyped_penalty`, `w_reader`) and how
   readily further sentences are quoted (`keep_ratio`, `close_ratio`): a grid search for the extractive
   selection that covers the most fact groups of the answerable cases, and among those within
   `COVERAGE_TOLERANCE` of the best, the most precise against the gold evidence quotes.
2. The evidence judge (`answer.judge_weights`): a logistic regression of "answerable" on the best
   evidence's features, with its bias then moved to the value that maximises a weighted balanced accuracy
   (answering answerable cases weighs `ANSWER_WEIGHT` times refusing unanswerable ones).
Retrieval does not depend on these settings, so each case is retrieved once. The result is written to
`rag/calibration.toml`, which `AnswerSettings` reads its defaults from.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.dataset import EvalCase, load_dataset
from evals.metrics import fact_matches
from evals.suites import Suite
from rag.index.embeddings import Embedder
from rag.index.lexical import LexicalIndex
from rag.maths import logistic
from rag.reader import make_reader
from rag.settings import AnswerSettings, Settings
from rag.types import Passage, Query, Turn

CALIBRATION = Path(__file__).resolve().parent.parent / "rag" / "calibration.toml"
GRID = {
    "w_similarity": (0.0, 0.3, 0.5, 0.7),
    "w_coverage": (0.1, 0.3, 0.5),
    "w_context": (0.0, 0.2, 0.4),
    "untyped_penalty": (0.1, 0.3),
    "w_reader": (0.0, 2.0, 4.0, 8.0),
}
SELECTION_GRID = {
    "keep_ratio": (0.6, 0.7, 0.8, 0.9, 1.0),
    "close_ratio": (0.85, 0.95, 1.0),
}  # further sentences
COVERAGE_TOLERANCE = 0.005  # fact coverage a selection may give up for precision
JUDGE_GRID = {"typed_focus": (0.0, 0.25, 0.5, 0.75)}  # fitted with the judge (it decides refusals)
FITTED = (*GRID, *SELECTION_GRID, *JUDGE_GRID, "judge_weights")


@dataclass
class Prepared:
    """A case retrieved once: what the answerer sees of it."""

    suite: str
    case: EvalCase
    question: str  # standalone (orders removed, follow-ups condensed): query.question
    query: Query
    passages: list[Passage]
    history: list[Turn]
    structured: bool  # answered from document structure (a plug-in), not by the judge
    orders_only: bool
    lexical: LexicalIndex


def prepare(suite: Suite, settings: Settings, embedder: Embedder) -> list[Prepared]:
    """Ingest a suite's corpus into a temporary index and retrieve every case once, through the pipeline's
    own stages (condense, retrieve, read the structure)."""
    from evals.runner import temporary_index
    from rag.orders import information_need
    from rag.pipeline import build_pipeline, parse_history

    cases = load_dataset(suite.dataset)
    prepared = []
    with temporary_index(suite.corpus, settings, embedder=embedder) as index:
        pipeline = build_pipeline(index.settings, embedder=embedder, store=index.store)
        k = settings.retrieval.k
        for case in cases:
            turns = parse_history(case.history, settings.answer.max_history_turns)
            need = information_need(case.question)
            if not need.strip():
                prepared.append(
                    Prepared(suite.name, case, "", Query(""), [], turns, False, True, pipeline.lexical)
                )
                continue
            query = pipeline.condense(need, turns)
            passages = pipeline.retrieve(query, k)
            structured = pipeline.read_structure(need, query, passages) is not None
            prepared.append(
                Prepared(
                    suite.name,
                    case,
                    query.question,
                    query,
                    passages,
                    turns,
                    structured,
                    False,
                    pipeline.lexical,
                )
            )
    return prepared


def _selection(
    samples: Sequence[Prepared], answer: AnswerSettings, embedder: Embedder
) -> tuple[float, float]:
    """(mean share of fact groups the extractive selection covers, share of selected sentences that
    match a gold evidence quote), over answerable cases."""
    from evals.metrics import quote_matches_gold
    from rag.evidence import EvidenceScorer
    from rag.generators.base import GenerationRequest
    from rag.generators.extractive import ExtractiveGenerator

    total = 0.0
    count = 0
    gold = [0, 0]
    scorers: dict[int, EvidenceScorer] = {}
    for s in samples:
        if not s.case.answerable or s.structured or s.orders_only:
            continue
        scorer = scorers.setdefault(
            id(s.lexical), EvidenceScorer(embedder, s.lexical, answer, make_reader(answer.reader))
        )
        chosen = ExtractiveGenerator(scorer, answer).select(
            GenerationRequest(s.question, s.query, s.passages, s.history)
        )
        text = " ".join(ev.text for ev in chosen)
        total += sum(any(fact_matches(a, text) for a in g) for g in s.case.facts) / len(s.case.facts)
        count += 1
        if s.case.evidence:
            gold[0] += sum(any(quote_matches_gold(ev.text, q) for q in s.case.evidence) for ev in chosen)
            gold[1] += len(chosen)
    return (total / count if count else 0.0), (gold[0] / gold[1] if gold[1] else 0.0)


def features(
    samples: Sequence[Prepared], answer: AnswerSettings, embedder: Embedder
) -> list[tuple[list[float] | None, bool]]:
    """(the judge's feature vector, or None when the evidence refuses by type; answerable) per case that
    reaches the judge."""
    from rag.evidence import EvidenceScorer

    rows: list[tuple[list[float] | None, bool]] = []
    scorers: dict[int, EvidenceScorer] = {}
    for s in samples:
        if s.structured or s.orders_only:
            continue
        if not s.passages:
            rows.append((None, s.case.answerable))
            continue
        scorer = scorers.setdefault(
            id(s.lexical), EvidenceScorer(embedder, s.lexical, answer, make_reader(answer.reader))
        )
        assessment = scorer.assess(s.question, s.query.text, s.passages, s.history)
        usable = assessment.features is not None and assessment.lead
        rows.append(
            (assessment.features.vector() if usable and assessment.features else None, s.case.answerable)
        )
    return rows


def fit_logistic(
    xs: Sequence[Sequence[float]], ys: Sequence[bool], l2: float = 0.01, steps: int = 4000
) -> list[float]:
    """L2-regularised logistic regression by gradient descent (classes weighted to balance): [bias, *w]."""
    n, d = len(xs), len(xs[0])
    positives = sum(ys) or 1
    negatives = (n - sum(ys)) or 1
    weight = [n / (2 * positives) if y else n / (2 * negatives) for y in ys]
    w = [0.0] * (d + 1)
    rate = 0.5
    for _ in range(steps):
        grad = [0.0] * (d + 1)
        for x, y, c in zip(xs, ys, weight, strict=True):
            z = w[0] + sum(wi * xi for wi, xi in zip(w[1:], x, strict=True))
            p = logistic(z)
            g = c * (p - float(y))
            grad[0] += g
            for j, xj in enumerate(x):
                grad[j + 1] += g * xj
        for j in range(d + 1):
            reg = l2 * w[j] if j else 0.0
            w[j] -= rate * (grad[j] / n + reg)
    return w


# A refused answerable question costs the user more than a verified but off-target quote for an
# unanswerable one (every quote is checked against its passage): answering is weighted this much more.
ANSWER_WEIGHT = 2.0


def balanced_accuracy(rows: Sequence[tuple[list[float] | None, bool]], weights: Sequence[float]) -> float:
    """Weighted mean of the answered share of answerable cases (weight `ANSWER_WEIGHT`) and the refused
    share of unanswerable ones (weight 1)."""
    answered = [False if x is None else _z(weights, x) >= 0 for x, _ in rows]
    pos = [a for a, (_, y) in zip(answered, rows, strict=True) if y]
    neg = [not a for a, (_, y) in zip(answered, rows, strict=True) if not y]
    w = ANSWER_WEIGHT
    return (w * sum(pos) / max(len(pos), 1) + sum(neg) / max(len(neg), 1)) / (w + 1)


def _z(weights: Sequence[float], x: Sequence[float]) -> float:
    return weights[0] + sum(w * v for w, v in zip(weights[1:], x, strict=True))


def fit_judge(rows: Sequence[tuple[list[float] | None, bool]]) -> tuple[list[float], float]:
    """The judge's weights, and the balanced accuracy they reach on `rows`."""
    data = [(x, y) for x, y in rows if x is not None]
    if not data or all(y for _, y in data) or not any(y for _, y in data):
        raise ValueError("calibration needs answerable and unanswerable cases that reach the judge")
    weights = fit_logistic([x for x, _ in data], [y for _, y in data])
    # Move the bias to the best balance point (the regression's own 0.5 ignores cases refused by type).
    candidates = sorted({-_z([0.0, *weights[1:]], x) for x, _ in data})
    best = max(
        candidates, key=lambda b: (balanced_accuracy(rows, [b + 1e-9, *weights[1:]]), -abs(b - weights[0]))
    )
    weights = [best + 1e-6, *weights[1:]]
    return [round(w, 4) for w in weights], balanced_accuracy(rows, weights)


def near_best(
    trials: Sequence[tuple[tuple[float, float], dict[str, Any]]],
) -> list[tuple[tuple[float, float], dict[str, Any]]]:
    """The trials ((fact coverage, gold precision), settings) whose coverage is within
    `COVERAGE_TOLERANCE` of the best: an answer must hold the facts first; the most precise of these wins."""
    top = max(coverage for (coverage, _), _ in trials)
    return [t for t in trials if t[0][0] >= top - COVERAGE_TOLERANCE]


def calibrate(
    suites: Sequence[Suite],
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fit the settings named in FITTED on the tuning suites; returns the values and how well they do."""
    tuning = [s for s in suites if not s.held_out]
    if not tuning:
        raise ValueError("no tuning suites to calibrate on")
    embedder = embedder or Embedder(settings.embedding)
    samples: list[Prepared] = []
    for suite in tuning:
        if progress:
            progress(f"retrieving {suite.name}")
        samples.extend(prepare(suite, settings, embedder))
    scored = []
    for values in itertools.product(*GRID.values()):
        trial = dict(zip(GRID, values, strict=True))
        measured = _selection(samples, settings.answer.model_copy(update=trial), embedder)
        if progress:
            progress(f"{trial}: fact coverage {measured[0]:.3f}")
        scored.append((measured, trial))
    trials = []
    for _, weighting in near_best(scored):
        for values in itertools.product(*SELECTION_GRID.values()):
            trial = {**weighting, **dict(zip(SELECTION_GRID, values, strict=True))}
            coverage, precision = _selection(samples, settings.answer.model_copy(update=trial), embedder)
            if progress:
                progress(f"{trial}: fact coverage {coverage:.3f}, gold precision {precision:.3f}")
            trials.append(((coverage, precision), trial))
    (coverage, precision), chosen = max(near_best(trials), key=lambda t: (t[0][1], t[0][0]))
    judged: tuple[float, dict[str, Any]] | None = None
    for values in itertools.product(*JUDGE_GRID.values()):
        trial = {**chosen, **dict(zip(JUDGE_GRID, values, strict=True))}
        answer = settings.answer.model_copy(update=trial)
        weights, accuracy = fit_judge(features(samples, answer, embedder))
        if progress:
            progress(f"{trial}: balanced accuracy {accuracy:.3f}")
        if judged is None or accuracy > judged[0] + 1e-9:
            judged = (accuracy, {**trial, "judge_weights": weights})
    assert judged is not None
    return {
        "suites": [s.name for s in tuning],
        "cases": len(samples),
        "fact_coverage": round(coverage, 4),
        "gold_precision": round(precision, 4),
        "balanced_accuracy": round(judged[0], 4),
        "answer": judged[1],
    }


def write(result: dict[str, Any], path: Path = CALIBRATION) -> None:
    lines = [
        "# Written by `rag eval --calibrate` (evals/calibrate.py): the answerer's deciding constants, fitted",
        f"# on the tuning suites {', '.join(result['suites'])} ({result['cases']} cases). Selection covers "
        f"{result['fact_coverage']:.3f} of the fact groups (gold precision {result['gold_precision']:.3f});",
        f"# the judge's balanced accuracy is {result['balanced_accuracy']:.3f}. AnswerSettings reads its "
        "defaults from here.",
        "[answer]",
    ]
    for key, value in result["answer"].items():
        lines.append(f"{key} = {value!r}")
    path.write_text("\n".join(lines) + "\n")


def load(path: Path = CALIBRATION) -> dict[str, Any]:
    with open(path, "rb") as handle:
        return dict(tomllib.load(handle).get("answer", {}))


def table(path: Path = CALIBRATION) -> str:
    """The fitted values as the README shows them (a test keeps the two equal)."""
    rows = ["| setting | fitted value |", "|---|---|"]
    rows += [f"| `answer.{key}` | `{value}` |" for key, value in load(path).items()]
    return "\n".join(rows)
