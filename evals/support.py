"""The answer-time support judge, fitted on labelled (sentence, passage) pairs from real model runs.

    python -m evals.support collect RUN.jsonl [--suites ...]   # pairs from `rag eval --out` rows, unlabelled
    python -m evals.support perturb                            # inventions made from supported pairs
    python -m evals.support fit                                # fit on tuning pairs, report on all
    python -m evals.support replay RUN.jsonl                   # the run's metrics under the current judge

`collect` reads what an LLM drafted (`draft`, before verification) in an evaluation run and pairs each of
its sentences with the passages it cites (or, without a marker, the passage the verifier would try first),
plus the best passage it does not cite; a person labels each pair `supported` true or false (the rubric is
in evals/support/README.md). `perturb` adds, for every supported pair, the same sentence with one detail
invented (a number, a negation, a name): unsupported by construction. `fit` fits `CalibratedJudge`'s
logistic weights on the tuning suites' pairs and picks the threshold with the largest difference between
the share of supported sentences kept and of unsupported ones let through (Youden's J); it writes both to rag/support.toml and prints, per suite, the
share of supported sentences kept and of unsupported ones let through, beside the fixed lexical judge.
`replay` verifies a run's recorded drafts again with the current judge and scores them as `rag eval`
does: the effect of a judge change on the same model output, without running the model again.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evals.suites import SUITES, load_suites
from rag.generators.base import REFUSAL
from rag.index.embeddings import Embedder
from rag.settings import SUPPORT, EmbeddingSettings
from rag.text import tokenize
from rag.types import Passage
from rag.verify import SUPPORT_FEATURES, CalibratedJudge, LexicalEmbeddingJudge, split_claims

PAIRS = Path(__file__).resolve().parent / "support" / "pairs.jsonl"
OLD_THRESHOLD = 0.62  # the lexical judge's hand-set answer-time threshold, for comparison
START = [-4.0, 2.0, 2.0, 2.0, -2.0, -1.0, -0.3]  # before the first fit: which window to read features from


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write(pairs: Iterable[dict[str, Any]], path: Path = PAIRS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs)
    path.write_text(text, encoding="utf-8")


def collect(rows: Sequence[dict[str, Any]], judge: LexicalEmbeddingJudge) -> list[dict[str, Any]]:
    """Unlabelled pairs from `rag eval --out` rows that kept the generator's draft."""
    pairs: list[dict[str, Any]] = []
    for row in rows:
        draft, retrieved = row.get("draft") or "", row.get("retrieved") or []
        passages = [Passage(p["chunk_id"], p["text"], {"source": p["source"]}) for p in retrieved]
        for claim, markers in split_claims(draft):
            if REFUSAL.rstrip(".") in claim or len(tokenize(claim)) < 3 or not passages:
                continue
            cited = [m for m in dict.fromkeys(markers) if 1 <= m <= len(passages)]
            scores = {m: judge.support(claim, p).score for m, p in enumerate(passages, 1)}
            ranked = sorted(scores, key=lambda m: -scores[m])
            chosen = [(m, "cited") for m in cited] or [(ranked[0], "unmarked")]
            other = next((m for m in ranked if m not in cited and m != chosen[0][0]), None)
            if other is not None:
                chosen.append((other, "not cited"))
            for m, origin in chosen:
                pairs.append(
                    {
                        "suite": row.get("suite", ""),
                        "case": row["id"],
                        "claim": claim,
                        "passage": passages[m - 1].text,
                        "origin": origin,
                        "supported": None,
                    }
                )
    return list({(p["claim"], p["passage"]): p for p in pairs}.values())


_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_AUXILIARY = re.compile(r"\b(is|are|was|were|can|will|must|may|should|does|do|has|have)\b(?! not)")
_NEGATION = re.compile(r"\b(?:not|never|no longer)\s+|n['’]t\b", re.I)


def perturbed(claim: str, names: Sequence[str]) -> tuple[str, str] | None:
    """The claim with one invented detail, and which kind; None when nothing applies."""
    number = _NUMBER.search(claim)
    if number:
        value = number.group(0).replace(",", "")
        changed = str(int(float(value)) * 2 + 1) if value.replace(".", "").isdigit() else "7"
        return claim[: number.start()] + changed + claim[number.end() :], "number"
    if _NEGATION.search(claim):
        return re.sub(r"\s{2,}", " ", _NEGATION.sub("", claim, count=1)), "negation"
    auxiliary = _AUXILIARY.search(claim)
    if auxiliary:
        return claim[: auxiliary.end()] + " not" + claim[auxiliary.end() :], "negation"
    own = [w for w in re.findall(r"\b[A-Z][a-z]+\b", claim)[1:]]
    foreign = [n for n in names if n not in claim]
    if own and foreign:
        return claim.replace(own[0], foreign[0], 1), "name"
    return None


def perturb(pairs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Invented variants of the supported pairs (replacing earlier ones)."""
    real = [p for p in pairs if not p["origin"].startswith("invented")]
    names = sorted({w for p in real for w in re.findall(r"\b[A-Z][a-z]{3,}\b", p["passage"])})
    out = list(real)
    for p in real:
        if p["supported"] is not True:
            continue
        variant = perturbed(p["claim"], [n for n in names if n.lower() not in p["passage"].lower()])
        if variant:
            out.append({**p, "claim": variant[0], "origin": f"invented {variant[1]}", "supported": False})
    return out


def best_features(judge: CalibratedJudge, pair: dict[str, Any]) -> list[float] | None:
    scored = judge.features(pair["claim"], Passage("p", pair["passage"], {}))
    if not scored:
        return None  # a number the passage does not state: never supported
    return max((f for _, f in scored), key=judge.probability)


def logistic(x: Any, y: Any, l2: float = 0.01, steps: int = 3000, rate: float = 0.5) -> list[float]:
    import numpy as np

    data = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(data.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(data @ w)))
        grad = data.T @ (p - y) / len(y)
        grad[1:] += l2 * w[1:]
        w -= rate * grad
    return [round(float(v), 4) for v in w]


def rates(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> tuple[float, float]:
    """(share of supported pairs kept, share of unsupported ones let through)."""
    good = [s for s, y in zip(scores, labels, strict=True) if y]
    bad = [s for s, y in zip(scores, labels, strict=True) if not y]
    kept = sum(s >= threshold for s in good) / len(good) if good else 0.0
    passed = sum(s >= threshold for s in bad) / len(bad) if bad else 0.0
    return kept, passed


def fit(pairs: Sequence[dict[str, Any]], embedder: Embedder) -> dict[str, Any]:
    import numpy as np

    suites = load_suites(SUITES)
    tuning = {s.name for s in suites if not s.held_out}
    labelled = [p for p in pairs if isinstance(p.get("supported"), bool)]
    train = [p for p in labelled if p["suite"] in tuning]
    weights = START
    for _ in range(3):  # features of each pair's best window under the current weights, then refit
        judge = CalibratedJudge(embedder, weights)
        rows = [(best_features(judge, p), p["supported"]) for p in train]
        usable = [(f, y) for f, y in rows if f is not None]
        weights = logistic(np.array([f for f, _ in usable]), np.array([float(y) for _, y in usable]))
    judge = CalibratedJudge(embedder, weights)
    scores = {id(p): judge.support(p["claim"], Passage("p", p["passage"], {})).score for p in labelled}
    train_scores = [scores[id(p)] for p in train]
    train_labels = [p["supported"] for p in train]
    candidates = sorted({round(s, 3) for s in train_scores if 0 < s < 1})

    def youden(t: float) -> float:
        kept, passed = rates(train_scores, train_labels, t)
        return kept - passed

    threshold = max(candidates, key=youden)
    return {"weights": weights, "threshold": threshold, "scores": scores, "labelled": labelled}


def report(result: dict[str, Any], embedder: Embedder) -> str:
    old = LexicalEmbeddingJudge(embedder)
    labelled = result["labelled"]
    lines = [
        "| pairs | supported | unsupported | calibrated: kept / let through | lexical at 0.62: kept / let through |",
        "|---|---|---|---|---|",
    ]
    suites = load_suites(SUITES)
    groups = [(f"{s.name} (held out)" if s.held_out else s.name, {s.name}) for s in suites]
    groups.append(("all", {s.name for s in suites}))
    for name, members in groups:
        chosen = [p for p in labelled if p["suite"] in members]
        if not chosen:
            continue
        labels = [p["supported"] for p in chosen]
        new = rates([result["scores"][id(p)] for p in chosen], labels, result["threshold"])
        before = [old.support(p["claim"], Passage("p", p["passage"], {})).score for p in chosen]
        was = rates(before, labels, OLD_THRESHOLD)
        lines.append(
            f"| {name} | {sum(labels)} | {len(labels) - sum(labels)} | {new[0]:.3f} / {new[1]:.3f} | "
            f"{was[0]:.3f} / {was[1]:.3f} |"
        )
    return "\n".join(lines)


def save(result: dict[str, Any], table: str, path: Path = SUPPORT) -> None:
    lines = [
        "# Written by `python -m evals.support fit` (evals/support.py): the answer-time support judge, a",
        "# logistic model over " + ", ".join(SUPPORT_FEATURES) + " (bias first),",
        "# fitted on the tuning suites' labelled pairs in evals/support/pairs.jsonl. AnswerSettings reads it.",
        *(f"# {line}" for line in table.splitlines()),
        "[answer]",
        f"support_weights = {result['weights']!r}",
        f"support_threshold = {result['threshold']!r}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _answer(row: dict[str, Any]) -> Any:
    """A `rag eval --out` row's answer as an `Answer` (what scoring reads of it)."""
    from rag.types import Answer, Citation

    citations = []
    for c in row["citations"]:
        passage = Passage(c["chunk_id"], c["text"], {"source": c["source"]})
        spans = tuple((c["text"].find(q), c["text"].find(q) + len(q)) for q in c["quotes"])
        citations.append(Citation(c["marker"], passage, c["quote"], c["start"], c["end"], spans))
    passages = [Passage(p["chunk_id"], p["text"], {"source": p["source"]}) for p in row["retrieved"]]
    return Answer(
        row["question"],
        row["answer"],
        citations,
        row["refused"],
        passages,
        timings={"run": row["latency_ms"]},
    )


def replay(
    rows: Sequence[dict[str, Any]], embedder: Embedder, fallback: Sequence[dict[str, Any]] = ()
) -> list[tuple[str, dict[str, Any]]]:
    """Per suite, the summary of `rag eval` for the rows' drafts verified by the current judge; with
    `fallback` rows (another run of the same suites), a draft none of whose sentences verifies, and that
    is not the model's refusal, takes the fallback run's answer instead."""
    from evals.dataset import load_dataset
    from evals.metrics import summarize
    from evals.runner import make_support, score_case
    from rag.settings import Settings
    from rag.types import Answer
    from rag.verify import Verifier, make_support_judge

    a = Settings().answer
    judge = make_support_judge(a.support_judge, embedder, a.support_weights, a.support_threshold)
    supports = make_support(LexicalEmbeddingJudge(embedder))
    out = []
    others = {(r.get("suite"), r["id"]): r for r in fallback if "answer" in r}
    for suite in load_suites(SUITES):
        cases = {c.id: c for c in load_dataset(suite.dataset)}
        scores = []
        for row in rows:
            if row.get("suite") != suite.name or row["id"] not in cases or "draft" not in row:
                continue
            passages = [Passage(p["chunk_id"], p["text"], {"source": p["source"]}) for p in row["retrieved"]]
            answer = Answer(row["question"], "", retrieved=passages, timings={"run": row["latency_ms"]})
            if row["draft"]:
                verifier = Verifier(passages, judge, declines=[REFUSAL])
                texts = [text for text, _ in verifier.check_text(row["draft"])]
                answer.citations = verifier.citations
                answer.text = " ".join(texts)
                if not answer.citations and not verifier.declined and (suite.name, row["id"]) in others:
                    answer = _answer(others[(suite.name, row["id"])])
                    answer.timings = {"run": row["latency_ms"]}
            answer.refused = not answer.citations
            if answer.refused:
                answer.text, answer.citations = REFUSAL, []
            scores.append(score_case(cases[row["id"]], answer, len(passages), supports))
        if scores:
            out.append((suite.name, summarize(scores)))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.support")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="add unlabelled pairs from a `rag eval --all --out` file")
    c.add_argument("run", type=Path)
    sub.add_parser("perturb", help="add invented variants of the supported pairs")
    sub.add_parser("fit", help="fit the judge on the tuning pairs; write rag/support.toml")
    r = sub.add_parser("replay", help="a run's metrics with its drafts verified by the current judge")
    r.add_argument("run", type=Path)
    r.add_argument("--fallback", type=Path, help="another run whose answer replaces an unverified draft")
    args = parser.parse_args(argv)
    embedder = Embedder(EmbeddingSettings())
    pairs = read(PAIRS)
    if args.command == "collect":
        new = collect(read(args.run), LexicalEmbeddingJudge(embedder))
        known = {(p["claim"], p["passage"]) for p in pairs}
        added = [p for p in new if (p["claim"], p["passage"]) not in known]
        write([*pairs, *added])
        print(f"{len(added)} new pairs ({len(pairs) + len(added)} in all) in {PAIRS}")
    elif args.command == "perturb":
        out = perturb(pairs)
        write(out)
        print(
            f"{len(out) - len([p for p in pairs if not p['origin'].startswith('invented')])} invented pairs"
        )
    elif args.command == "replay":
        keys = ("fact_recall", "false_refusal_rate", "refusal_rate", "citation_precision_gold")
        keys += ("citation_precision", "latency_p50_ms")
        print("| suite | " + " | ".join(keys) + " |")
        print("|---|" + "---|" * len(keys))
        for name, summary in replay(read(args.run), embedder, read(args.fallback) if args.fallback else ()):
            print(f"| {name} | " + " | ".join(f"{summary[k]:.3f}" for k in keys) + " |")
    else:
        result = fit(pairs, embedder)
        table = report(result, embedder)
        save(result, table)
        print(f"weights {result['weights']}, threshold {result['threshold']}")
        print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
