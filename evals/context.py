"""What does an LLM see of the evidence under a context budget? `python -m evals.context [budget ...]`

For every answerable case with gold evidence, the retrieved passages are cut to each budget the way the
pipeline cuts them for an LLM generator (`EvidenceScorer.excerpts`, setting `generator.context_chars`;
0 = whole passages). Printed per suite and budget: the share of cases whose prompt still holds a gold
evidence sentence, and the mean characters of passage text sent (about 4 per token; a small model here
reads ~40 prompt tokens/s, so characters are latency). Pick the smallest budget that keeps the evidence.
"""

from __future__ import annotations

import sys
from pathlib import Path

from evals.calibrate import prepare
from evals.metrics import quote_matches_gold
from evals.suites import SUITES, load_suites
from rag.evidence import EvidenceScorer
from rag.index.embeddings import Embedder
from rag.reader import make_reader
from rag.settings import Settings
from rag.text import sentence_spans

BUDGETS = (0, 800, 1200, 1600, 2400)


def main(budgets: tuple[int, ...] = BUDGETS, path: Path = SUITES) -> None:
    settings = Settings()
    embedder = Embedder(settings.embedding)
    print("| suite | cases | " + " | ".join(f"{b or 'whole'}: gold kept / chars" for b in budgets) + " |")
    print("|---|---|" + "---|" * len(budgets))
    for suite in load_suites(path):
        samples = [
            s
            for s in prepare(suite, settings, embedder)
            if s.case.answerable and s.case.evidence and not s.structured and not s.orders_only
        ]
        kept = dict.fromkeys(budgets, 0)
        chars = dict.fromkeys(budgets, 0)
        scorers: dict[int, EvidenceScorer] = {}
        for s in samples:
            scorer = scorers.setdefault(
                id(s.lexical),
                EvidenceScorer(embedder, s.lexical, settings.answer, make_reader(settings.answer.reader)),
            )
            for budget in budgets:
                shown = scorer.excerpts(s.question, s.query.text, s.passages, s.history, budget)
                sentences = [text[a:b] for text in shown for a, b in sentence_spans(text)]
                kept[budget] += any(quote_matches_gold(x, q) for x in sentences for q in s.case.evidence)
                chars[budget] += sum(len(text) for text in shown)
        n = max(len(samples), 1)
        name = f"{suite.name} (held out)" if suite.held_out else suite.name
        cells = " | ".join(f"{kept[b] / n:.3f} / {chars[b] // n}" for b in budgets)
        print(f"| {name} | {len(samples)} | {cells} |")


if __name__ == "__main__":
    main(tuple(int(a) for a in sys.argv[1:]) or BUDGETS)
