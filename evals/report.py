"""Reports of an evaluation run: a terminal table, a Markdown report with a bar chart and the failures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evals.dataset import EvalCase
from evals.runner import RunResult

METRICS = [
    ("fact_recall", "fact recall"),
    ("evidence_recall", "evidence recall@k"),
    ("mrr", "MRR"),
    ("citation_recall", "citation recall"),
    ("citation_precision", "citation precision"),
    ("refusal_rate", "refusal (unanswerable)"),
    ("false_refusal_rate", "false refusal"),
]


def _fmt(key: str, value: float) -> str:
    return f"{value:.0f}" if key.startswith("latency") else f"{value:.3f}"


def summary_rows(results: Sequence[RunResult]) -> tuple[list[str], list[list[str]]]:
    header = ["metric", *(r.config for r in results)]
    keys = [*METRICS, ("latency_p50_ms", "latency p50 (ms)"), ("latency_p95_ms", "latency p95 (ms)")]
    summaries = [r.summary for r in results]
    rows = [[label, *(_fmt(key, s[key]) for s in summaries)] for key, label in keys]
    rows.append(["passed / cases", *(f"{s['passed']}/{s['cases']}" for s in summaries)])
    rows.append(["errors", *(str(s["errors"]) for s in summaries)])
    return header, rows


def markdown_table(results: Sequence[RunResult]) -> str:
    header, rows = summary_rows(results)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def chart(results: Sequence[RunResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(len(results), 1)
    for i, result in enumerate(results):
        summary = result.summary
        xs = [j + i * width for j in range(len(METRICS))]
        ax.bar(xs, [summary[key] for key, _ in METRICS], width, label=result.config)
    ax.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(METRICS))])
    ax.set_xticklabels([label for _, label in METRICS], rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.legend(loc="lower left", fontsize="small")
    ax.set_title("Evaluation metrics per configuration (false refusal: lower is better)")
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


def write_report(results: Sequence[RunResult], cases: Sequence[EvalCase], path: Path, command: str) -> Path:
    """Write the Markdown report and its chart (a PNG beside it); returns the chart's path."""
    image = (
        path.with_suffix(".png")
        if path.suffix.lower() != ".png"
        else path.with_name(path.stem + "-chart.png")
    )
    chart(results, image)
    parts = [
        "# Evaluation report",
        "",
        f"Command: `{command}`  ",
        f"Cases: {len(cases)} ({sum(c.answerable for c in cases)} answerable, "
        f"{sum(not c.answerable for c in cases)} unanswerable)",
        "",
        markdown_table(results),
        "",
        f"![metrics per configuration]({image.name})",
        "",
    ]
    groups = by_group(results)
    if groups:
        parts += ["## By case group", "", groups, ""]
    for result in results:
        parts += [f"## Failed cases: {result.config}", "", failures(result, cases)]
    path.write_text("\n".join(parts), encoding="utf-8")
    return image
