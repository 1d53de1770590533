"""Reports of an evaluation run: a terminal table, a Markdown report with a bar chart and the failures;
for `rag eval --all`, one table with a row per suite."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.dataset import EvalCase
from evals.runner import RunResult, SuiteRun

# Gold citation precision is the headline citation metric: the first citation row/column everywhere.
METRICS = [
    ("fact_recall", "fact recall"),
    ("evidence_recall", "evidence recall@k"),
    ("mrr", "MRR"),
    ("citation_precision_gold", "citation precision (gold)"),
    ("citation_precision", "citation precision (judge)"),
    ("citation_recall", "citation recall"),
    ("refusal_rate", "refusal (unanswerable)"),
    ("false_refusal_rate", "false refusal"),
    ("reader_top1", "reader top-1"),
    ("cosine_top1", "cosine top-1"),
    ("reader_auc", "reader AUC"),
]
# The columns of the suites table (`rag eval --all`), after the suite's name.
SUITE_COLUMNS = [
    ("cases", "cases"),
    ("fact_recall", "fact recall"),
    ("evidence_recall", "evidence recall@k"),
    ("mrr", "MRR"),
    ("citation_precision_gold", "citation precision (gold)"),
    ("citation_precision", "citation precision (judge)"),
    ("citation_recall", "citation recall"),
    ("refusal_rate", "refusal"),
    ("false_refusal_rate", "false refusal"),
    ("reader_top1", "reader top-1"),
    ("cosine_top1", "cosine top-1"),
    ("reader_auc", "reader AUC"),
    ("latency_p50_ms", "p50 ms"),
]


def _fmt(key: str, value: float) -> str:
    if key == "cases":
        return str(value)
    return f"{value:.0f}" if key.startswith("latency") else f"{value:.3f}"


def summary_rows(results: Sequence[RunResult]) -> tuple[list[str], list[list[str]]]:
    header = ["metric", *(r.config for r in results)]
    keys = [*METRICS, ("latency_p50_ms", "latency p50 (ms)"), ("latency_p95_ms", "latency p95 (ms)")]
    summaries = [r.summary for r in results]
    rows = [[label, *(_fmt(key, s[key]) for s in summaries)] for key, label in keys]
    rows.append(["passed / cases", *(f"{s['passed']}/{s['cases']}" for s in summaries)])
    rows.append(["errors", *(str(s["errors"]) for s in summaries)])
    return header, rows


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_table(results: Sequence[RunResult]) -> str:
    return _markdown(*summary_rows(results))


def suite_label(run: SuiteRun, result: RunResult, configs: int) -> str:
    """A row's name: the suite's label ("techdocs (held out)"), plus the configuration when a run
    compares several ("dev · bm25")."""
    return f"{run.suite.label} · {result.config}" if configs > 1 else run.suite.label


def suite_summaries(runs: Sequence[SuiteRun], k: int) -> list[dict[str, Any]]:
    """One record per suite and configuration: what `rag eval --all --json` writes."""
    return [
        {
            "suite": run.suite.name,
            "role": run.suite.role,
            "held_out": run.suite.held_out,
            "dataset": str(run.suite.dataset),
            "corpus": str(run.suite.corpus),
            "config": result.config,
            "k": k,
            **result.summary,
        }
        for run in runs
        for result in run.results
    ]


def suite_rows(runs: Sequence[SuiteRun]) -> tuple[list[str], list[list[str]]]:
    """The suites table: a row per suite (per configuration when several), the SUITE_COLUMNS."""
    header = ["suite", *(label for _, label in SUITE_COLUMNS)]
    rows = []
    for run in runs:
        for result in run.results:
            summary = result.summary
            label = suite_label(run, result, len(run.results))
            rows.append([label, *(_fmt(key, summary[key]) for key, _ in SUITE_COLUMNS)])
    return header, rows


def chart(results: Sequence[RunResult], path: Path) -> None:
    _chart([(r.config, r.summary) for r in results], path, "configuration")


def _chart(bars: Sequence[tuple[str, dict[str, Any]]], path: Path, per: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(len(bars), 1)
    for i, (label, summary) in enumerate(bars):
        xs = [j + i * width for j in range(len(METRICS))]
        ax.bar(xs, [summary[key] for key, _ in METRICS], width, label=label)
    ax.set_xticks([j + width * (len(bars) - 1) / 2 for j in range(len(METRICS))])
    ax.set_xticklabels([label for _, label in METRICS], rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.legend(loc="lower left", fontsize="small")
    ax.set_title(f"Evaluation metrics per {per} (false refusal: lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def by_group(results: Sequence[RunResult]) -> str:
    """Fact recall and passed cases per group of case ids ("fu-03" is in group "fu"), per configuration."""
    from evals.metrics import summarize

    groups = sorted({s.id.split("-")[0] for s in results[0].scores}) if results else []
    if len(groups) < 2:
        return ""
    lines = ["| group | " + " | ".join(f"{r.config}: fact recall / passed" for r in results) + " |"]
    lines.append("|" + "---|" * (len(results) + 1))
    for group in groups:
        cells = []
        for r in results:
            scores = [s for s in r.scores if s.id.split("-")[0] == group]
            summary = summarize(scores)
            recall = f"{summary['fact_recall']:.2f}" if any(s.answerable for s in scores) else "—"
            cells.append(f"{recall} / {summary['passed']}/{len(scores)}")
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def by_tag(results: Sequence[RunResult], cases: Sequence[EvalCase]) -> str:
    """Fact recall and passed cases per tag of the dataset's cases, per configuration ("" without tags)."""
    from evals.metrics import summarize

    tags = sorted({tag for c in cases for tag in c.tags})
    if not tags or not results:
        return ""
    tagged = {tag: {c.id for c in cases if tag in c.tags} for tag in tags}
    lines = ["| tag | cases | " + " | ".join(f"{r.config}: fact recall / passed" for r in results) + " |"]
    lines.append("|" + "---|" * (len(results) + 2))
    for tag in tags:
        cells = []
        for r in results:
            scores = [s for s in r.scores if s.id in tagged[tag]]
            summary = summarize(scores)
            recall = f"{summary['fact_recall']:.2f}" if any(s.answerable for s in scores) else "—"
            cells.append(f"{recall} / {summary['passed']}/{len(scores)}")
        lines.append(f"| {_escape(tag)} | {len(tagged[tag])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failures(result: RunResult, cases: Sequence[EvalCase]) -> str:
    by_id = {c.id: c for c in cases}
    out = []
    for score in result.scores:
        if score.passed:
            continue
        case = by_id[score.id]
        answer = result.answers.get(score.id)
        out.append(f"#### {case.id}: {_escape(case.question)}")
        if case.history:
            out.append("- history: " + " / ".join(f"{t.role}: {_escape(t.content)}" for t in case.history))
        expected = (
            "; ".join(" or ".join(f"`{a}`" for a in group) for group in case.facts)
            or "(unanswerable: a refusal)"
        )
        out.append(f"- expected: {expected}")
        if score.error:
            out.append(f"- error: {_escape(score.error)}")
        elif answer is not None:
            out.append(f"- answer{' (refused)' if answer.refused else ''}: {_escape(answer.text)}")
            for c in answer.citations:
                out.append(f"  - [{c.marker}] {c.passage.source} {c.passage.author}: “{_escape(c.quote)}”")
        out.append("")
    return "\n".join(out) if out else "None.\n"


def _image_path(path: Path) -> Path:
    return (
        path.with_suffix(".png")
        if path.suffix.lower() != ".png"
        else path.with_name(path.stem + "-chart.png")
    )


def _counts(cases: Sequence[EvalCase]) -> str:
    return (
        f"{len(cases)} ({sum(c.answerable for c in cases)} answerable, "
        f"{sum(not c.answerable for c in cases)} unanswerable)"
    )


def _details(results: Sequence[RunResult], cases: Sequence[EvalCase], level: str) -> list[str]:
    """The by-group and by-tag tables and the failed cases of one dataset's results."""
    parts = []
    groups = by_group(results)
    if groups:
        parts += [f"{level} By case group", "", groups, ""]
    tags = by_tag(results, cases)
    if tags:
        parts += [f"{level} By tag", "", tags, ""]
    for result in results:
        parts += [f"{level} Failed cases: {result.config}", "", failures(result, cases)]
    return parts


def write_report(results: Sequence[RunResult], cases: Sequence[EvalCase], path: Path, command: str) -> Path:
    """Write the Markdown report and its chart (a PNG beside it); returns the chart's path."""
    image = _image_path(path)
    chart(results, image)
    parts = [
        "# Evaluation report",
        "",
        f"Command: `{command}`  ",
        f"Cases: {_counts(cases)}",
        "",
        markdown_table(results),
        "",
        f"![metrics per configuration]({image.name})",
        "",
        *_details(results, cases, "##"),
    ]
    path.write_text("\n".join(parts), encoding="utf-8")
    return image


def write_suites_report(runs: Sequence[SuiteRun], path: Path, command: str) -> Path:
    """The report of `rag eval --all`: the suites table and chart, then each suite's details."""
    image = _image_path(path)
    bars = [
        (suite_label(run, result, len(run.results)), result.summary) for run in runs for result in run.results
    ]
    _chart(bars, image, "suite")
    held_out = [run.suite.name for run in runs if run.suite.held_out]
    parts = [
        "# Evaluation report",
        "",
        f"Command: `{command}`  ",
        f"Suites: {len(runs)}" + (f" (held out, never tuned on: {', '.join(held_out)})" if held_out else ""),
        "",
        _markdown(*suite_rows(runs)),
        "",
        f"![metrics per suite]({image.name})",
        "",
    ]
    for run in runs:
        parts += [
            f"## Suite: {run.suite.label}",
            "",
            f"Dataset: `{run.suite.dataset}`, corpus: `{run.suite.corpus}`, role: {run.suite.role}  ",
            f"Cases: {_counts(run.cases)}",
            "",
            markdown_table(run.results),
            "",
            *_details(run.results, run.cases, "###"),
        ]
    path.write_text("\n".join(parts), encoding="utf-8")
    return image
