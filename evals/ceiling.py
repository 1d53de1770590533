"""How well can the extractive answerer pick its sentence? `python -m evals.ceiling`

For every answerable case of every suite, the sentences that the evidence scorer sees (of the retrieved
passages, per part of the question) are labelled by whether they match a gold evidence quote. Printed per
suite: the share of cases with a gold sentence among them, and the share whose best sentence is gold
(top-1; top-2) under the calibrated score and under a conditional logit over all the scorer's signals,
fitted on the tuning suites only. Top-1 bounds the gold citation precision of a one-sentence answer.

Beside them, the trained reader (`rag.reader`, `python -m evals.train_reader`) on the same sentences of
the whole question: its top-1, plain cosine top-1 (all-MiniLM-L6-v2, question against sentence: the
baseline), and the AUC of its best score between answerable and unanswerable cases.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evals.calibrate import Prepared, prepare
from evals.suites import SUITES, load_suites
from rag.index.embeddings import Embedder
from rag.reader import make_reader
from rag.settings import Settings

Group = tuple[list[list[float]], list[float], list[bool]]  # signals, calibrated scores, gold


def signals(samples: Sequence[Prepared], settings: Settings, embedder: Embedder) -> list[Group]:
    from evals.metrics import quote_matches_gold
    from rag.evidence import EvidenceScorer, question_parts

    groups: list[Group] = []
    scorers: dict[int, EvidenceScorer] = {}
    for s in samples:
        if not s.case.answerable or s.structured or s.orders_only or not s.case.evidence:
            continue
        scorer = scorers.setdefault(
            id(s.lexical),
            EvidenceScorer(embedder, s.lexical, settings.answer, make_reader(settings.answer.reader)),
        )
        for part, query in question_parts(s.question, s.query.text):
            evidence = scorer.score(part, query, s.passages, s.history)
            rank = max(len(s.passages) - 1, 1)
            rows = [
                [
                    ev.similarity,
                    ev.coverage,
                    ev.context,
                    1.0 if ev.typed else 0.0,
                    1.0 if ev.typed is False else 0.0,
                    float(ev.near),
                    float(ev.repeat),
                    ev.passage / rank,
                ]
                for ev in evidence
            ]
            gold = [any(quote_matches_gold(ev.text, q) for q in s.case.evidence) for ev in evidence]
            groups.append((rows, [ev.score for ev in evidence], gold))
    return groups


@dataclass(frozen=True)
class Reading:
    reader_top1: float
    cosine_top1: float
    auc: float


def read_suite(samples: Sequence[Prepared], settings: Settings, embedder: Embedder) -> Reading:
    """The reader (`answer.reader`) against the gold evidence, on the sentences the answerer sees of each
    case; top-1 over the answerable cases with a gold sentence among them."""
    from evals.runner import reading
    from rag.evidence import EvidenceScorer

    reader_hits, cosine_hits, best = [], [], {True: [], False: []}
    scorers: dict[int, EvidenceScorer] = {}
    for s in samples:
        if s.structured or s.orders_only or not s.passages:
            continue
        scorer = scorers.setdefault(
            id(s.lexical),
            EvidenceScorer(embedder, s.lexical, settings.answer, make_reader(settings.answer.reader)),
        )
        evidence = scorer.score(s.question, s.query.text, s.passages, s.history)
        if not evidence:
            continue
        asked = s.query.text  # as the reader read it
        quotes = s.case.evidence if s.case.answerable else []
        top, reader_hit, cosine_hit, seen = reading(evidence, asked, quotes, embedder)
        best[s.case.answerable].append(top)
        if seen:
            reader_hits.append(reader_hit)
            cosine_hits.append(cosine_hit)
    mean = sum(reader_hits) / len(reader_hits) if reader_hits else 0.0
    baseline = sum(cosine_hits) / len(cosine_hits) if cosine_hits else 0.0
    from evals.metrics import auc

    return Reading(mean, baseline, auc(best[True], best[False]))


def fit(groups: Sequence[Group], l2: float = 0.01, steps: int = 2000, rate: float = 0.5) -> list[float]:
    """Conditional logit: weights under which a softmax over each group's sentences puts the most
    probability on its gold ones."""
    import numpy as np

    data = [(np.asarray(x), np.asarray(y, dtype=float) / sum(y)) for x, _, y in groups if any(y)]
    w = np.zeros(len(data[0][0][0]))
    for _ in range(steps):
        grad = np.zeros_like(w)
        for x, target in data:
            z = x @ w
            p = np.exp(z - z.max())
            grad += x.T @ (p / p.sum() - target)
        w -= rate * (grad / len(data) + l2 * w)
    return [float(v) for v in w]


def top(groups: Sequence[Group], n: int, weights: Sequence[float] | None = None) -> float:
    """Share of the groups with a gold sentence among their `n` best."""
    hits = 0
    labelled = [g for g in groups if any(g[2])]
    for rows, scores, gold in labelled:
        if weights is not None:
            scores = [sum(w * x for w, x in zip(weights, row, strict=True)) for row in rows]
        best = sorted(range(len(scores)), key=lambda i: -scores[i])[:n]
        hits += any(gold[i] for i in best)
    return hits / len(labelled) if labelled else 0.0


def main(path: Path = SUITES) -> None:
    settings = Settings()
    embedder = Embedder(settings.embedding)
    suites = load_suites(path)
    prepared = {s.name: prepare(s, settings, embedder) for s in suites}
    groups = {s.name: signals(prepared[s.name], settings, embedder) for s in suites}
    read = {s.name: read_suite(prepared[s.name], settings, embedder) for s in suites}
    weights = fit([g for s in suites if not s.held_out for g in groups[s.name]])
    print(
        "| suite | parts | gold among sentences | top-1 calibrated | top-1 fitted | top-2 fitted | reader top-1 "
        "| cosine top-1 | reader AUC |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for s in suites:
        g = groups[s.name]
        reach = sum(any(x[2]) for x in g) / len(g) if g else 0.0
        name = f"{s.name} (held out)" if s.held_out else s.name
        print(
            f"| {name} | {len(g)} | {reach:.3f} | {top(g, 1):.3f} | {top(g, 1, weights):.3f} | "
            f"{top(g, 2, weights):.3f} | {read[s.name].reader_top1:.3f} | {read[s.name].cosine_top1:.3f} | "
            f"{read[s.name].auc:.3f} |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SUITES)
