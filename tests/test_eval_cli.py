"""`rag eval` as a user runs it: real processes, the real corpus and model, exit codes and one-line errors.

The default corpus is ingested once for the session (conftest's `default_index`); every run without
`--corpus` reads that index. The dev-set run dominates the time of this file (one pass of the pipeline over
every case of evals/datasets/dev.jsonl).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from evals.dataset import load_dataset
from rag.types import Answer

from .conftest import BIN, CORPUS, DEV, DefaultIndex

ASK_KEYS = {"question", "answer", "refused", "citations", "retrieved", "latency_ms"}
CITATION_KEYS = {"marker", "chunk_id", "source", "title", "kind", "author", "text", "quote", "start", "end"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ARTICLE = (CORPUS / "imperial-jari-article.md").read_text(encoding="utf-8")


def clean_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return {**env, "RAG_DATA_DIR": str(data_dir)}


def rag(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "rag"), *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, cases: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return path


def terminal_rows(stdout: str) -> list[list[str]]:
    """The body rows of a rich table printed to a pipe: cells between │ characters."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in stdout.splitlines()
        if line.startswith("│")
    ]


def table_header(report: str) -> list[str]:
    line = next(line for line in report.splitlines() if line.startswith("| metric |"))
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


class Indexed:
    """A module-wide working dir, and the data dir that holds the ingested corpus."""

    def __init__(self, root: Path, data_dir: Path) -> None:
        self.root = root
        self.env = clean_env(data_dir)

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return rag(*args, cwd=cwd or self.root, env=self.env)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, default_index: DefaultIndex) -> Indexed:
    return Indexed(tmp_path_factory.mktemp("eval-cli"), default_index.data_dir)


@pytest.fixture(scope="module")
def dev_run(indexed: Indexed) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = indexed.root / "dev"
    out.mkdir()
    result = indexed.run(
        "eval", str(DEV), "--out", "results.jsonl", "--report", "report.md", "--json", "summary.json", cwd=out
    )
    return result, out


def test_dev_set_results_have_the_ask_json_shape(
    dev_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, out = dev_run
    assert result.returncode == 0, result.stderr
    assert "warning:" not in result.stderr  # every evidence quote of the dev set is in the corpus
    assert set(Answer("q", "a").to_json()) == ASK_KEYS  # the keys `rag ask --json` prints

    rows = read_jsonl(out / "results.jsonl")
    assert [row["id"] for row in rows] == [c.id for c in load_dataset(DEV)]
    citations = 0
    for row in rows:
        assert set(row) == {"id", *ASK_KEYS, "draft", "notes"}, row.get("error", row["id"])
        assert isinstance(row["answer"], str) and isinstance(row["refused"], bool)
        assert isinstance(row["latency_ms"], int | float) and row["latency_ms"] >= 0
        assert row["retrieved"] and all({"chunk_id", "source", "text"} <= set(p) for p in row["retrieved"])
        if row["refused"]:
            assert row["citations"] == []
        for citation in row["citations"]:
            citations += 1
            assert set(citation) >= CITATION_KEYS  # `rag ask --json` may add keys; these stay
            assert citation["quote"] and citation["quote"] in citation["text"]
            assert citation["text"][citation["start"] : citation["end"]] == citation["quote"]
            assert citation["source"].startswith("corpus/")
            assert f"[{citation['marker']}]" in row["answer"]
    assert citations > len(rows) / 2  # most answers cite, so the checks above are not vacuous
    assert sum(not row["refused"] for row in rows) > len(rows) / 2


def test_dev_set_report(dev_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, out = dev_run
    assert result.returncode == 0, result.stderr
    labels = [row[0] for row in terminal_rows(result.stdout)]
    assert labels[:8] == [
        "fact recall",
        "evidence recall@k",
        "MRR",
        "citation precision (gold)",  # the headline citation metric comes first
        "citation precision (judge)",
        "citation recall",
        "refusal (unanswerable)",
        "false refusal",
    ]
    assert "passed / cases" in labels

    report = (out / "report.md").read_text(encoding="utf-8")
    assert report.startswith("# Evaluation report")
    assert table_header(report) == ["metric", "default"]
    cases = len(load_dataset(DEV))
    (summary,) = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (summary["dataset"], summary["corpus"], summary["config"], summary["k"]) == (
        str(DEV),
        None,
        "default",
        5,
    )
    assert summary["cases"] == len(load_dataset(DEV)) and summary["errors"] == 0
    for key, label in (
        ("fact_recall", "fact recall"),
        ("evidence_recall", "evidence recall@k"),
        ("mrr", "MRR"),
        ("citation_precision_gold", "citation precision (gold)"),
        ("citation_precision", "citation precision (judge)"),
        ("citation_recall", "citation recall"),
    ):
        value = f"{summary[key]:.3f}"
        assert re.search(rf"^\| {re.escape(label)} \| {value} \|$", report, re.MULTILINE), label
    assert 0.0 < summary["citation_precision_gold"] <= 1.0  # answers cite the dev set's evidence
    assert re.search(rf"^\| passed / cases \| \d+/{cases} \|$", report, re.MULTILINE)
    assert "| errors | 0 |" in report

    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+\.png)\)", report)
    assert images == ["report.png"]
    chart = out / images[0]
    assert chart.is_file() and chart.read_bytes()[:8] == PNG_MAGIC
    assert chart.stat().st_size > 5_000
    assert "## Failed cases: default" in report


def test_compare_configurations(indexed: Indexed) -> None:
    subset = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines()[:2]]
    dataset = write_jsonl(indexed.root / "compare.jsonl", subset)
    result = indexed.run(
        "eval",
        str(dataset),
        "--config",
        "default",
        "--config",
        "bm25",
        "--config",
        "dense",
        "--out",
        "compare-results.jsonl",
        "--report",
        "compare.md",
    )
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "metric" in line)
    assert re.search(r"metric\W+default\W+bm25\W+dense", header), result.stdout
    report = (indexed.root / "compare.md").read_text(encoding="utf-8")
    assert table_header(report) == ["metric", "default", "bm25", "dense"]
    for name in ("default", "bm25", "dense"):
        assert f"## Failed cases: {name}" in report
    assert (indexed.root / "compare.png").read_bytes()[:8] == PNG_MAGIC
    rows = read_jsonl(indexed.root / "compare-results.jsonl")
    assert [(r["config"], r["id"]) for r in rows] == [
        (name, case["id"]) for name in ("default", "bm25", "dense") for case in subset
    ]


def test_dataset_written_by_someone_else(indexed: Indexed) -> None:
    quotes = [
        "Emails show that China’s Jiangsu Automation Research Institute (Jari) discussed deploying "
        "software developed by scientists at Imperial College London for military use.",
        "Imperial said no research went ahead and the £500,000 of funding that had been received was "
        "returned in October 2021 after discussion with government officials.",
        "Charles Parton, a China expert at the Royal United Services Institute (RUSI), said the "
        "partnership was “clearly highly inappropriate” and should never have been signed off.",
    ]
    assert all(quote in ARTICLE for quote in quotes)  # copied exactly from the article
    cases = [
        {  # no history key at all, keys in another order
            "question": "Which London university's software did the Chinese institute talk about using?",
            "id": "ext-university",
            "facts": [["Imperial College London", "Imperial"]],
            "evidence": [quotes[0]],
            "answerable": True,
        },
        {
            "id": "ext-followup",
            "history": [
                {"role": "user", "content": "Did money actually change hands in the Jari partnership?"},
                {"role": "assistant", "content": "Yes: Jari signed a £3m deal with Imperial in 2019."},
            ],
            "question": "And what became of the part that had already been paid?",
            "answerable": True,
            "facts": [["returned", "given back"], ["£500,000", "500,000"]],
            "evidence": [quotes[1]],
        },
        {
            "id": "ext-think-tank",
            "question": "Charles Parton is an expert at which think tank?",
            "answerable": True,
            "facts": [["Royal United Services Institute", "RUSI"]],
            "evidence": [quotes[2]],
        },
        {
            "id": "ext-salary",
            "question": "What salary was Yike Guo paid as provost in Hong Kong?",
            "answerable": False,
            "facts": [],
            "evidence": [],
        },
    ]
    dataset = indexed.root / "theirs.jsonl"
    # Their own formatting: ASCII escapes, blank lines, CRLF line ends.
    dataset.write_bytes("\r\n\r\n".join(json.dumps(c, indent=None) for c in cases).encode())
    result = indexed.run("eval", str(dataset), "--out", "theirs-results.jsonl")
    assert result.returncode == 0, result.stderr
    assert "warning:" not in result.stderr
    rows = read_jsonl(indexed.root / "theirs-results.jsonl")
    assert [row["id"] for row in rows] == [c["id"] for c in cases]
    assert all(set(row) == {"id", *ASK_KEYS, "draft", "notes"} for row in rows)
    assert "passed / cases" in result.stdout and "/4" in result.stdout


def test_malformed_dataset_exits_2_naming_the_line(indexed: Indexed) -> None:
    good = json.loads(DEV.read_text(encoding="utf-8").splitlines()[0])
    dataset = indexed.root / "malformed.jsonl"
    dataset.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "x", "facts": []}) + "\n")
    result = indexed.run("eval", str(dataset))
    assert result.returncode == 2
    expected = f"error: {dataset}:2: an answerable case needs at least one fact group\n"
    assert result.stderr == expected, result.stderr
    assert result.stdout == ""

    dataset.write_text(json.dumps(good) + "\n\n{not json\n")
    result = indexed.run("eval", str(dataset))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {dataset}:3: not valid JSON")
    assert result.stderr.count("\n") == 1


def test_unknown_config_exits_2(indexed: Indexed) -> None:
    result = indexed.run("eval", str(DEV), "--config", "default", "--config", "bm99")
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown configuration 'bm99'; known: ")
    assert "bm25" in result.stderr and result.stderr.count("\n") == 1


def test_missing_dataset_exits_2(indexed: Indexed) -> None:
    result = indexed.run("eval", "no/such/dataset.jsonl")
    assert result.returncode == 2
    assert result.stderr.startswith("error: no/such/dataset.jsonl: cannot read")
    assert result.stderr.count("\n") == 1


def test_evidence_not_in_corpus_warns_but_runs(indexed: Indexed) -> None:
    case = {
        "id": "ghost-quote",
        "question": "How much was the Jari deal worth?",
        "answerable": True,
        "facts": [["£3m", "3m"]],
        "evidence": ["Imperial College London opened a research campus on the Moon."],
    }
    dataset = write_jsonl(indexed.root / "ghost.jsonl", [case])
    result = indexed.run("eval", str(dataset), "--out", "ghost-results.jsonl")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: ghost-quote: evidence quote not in the corpus: "
        "Imperial College London opened a research campus on the Moon."
    ]
    assert [row["id"] for row in read_jsonl(indexed.root / "ghost-results.jsonl")] == ["ghost-quote"]


def test_empty_index_exits_3(tmp_path: Path) -> None:
    result = rag("eval", str(DEV), cwd=tmp_path, env=clean_env(tmp_path / "fresh-data"))
    assert result.returncode == 3
    assert "rag ingest" in result.stderr and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ")


# ---------------------------------------------------------------------------------------------------
# --corpus: a temporary index of its own


def dev_subset(n: int) -> list[dict[str, Any]]:
    """The first n cases of the dev set, plus its first unanswerable case."""
    cases = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [*cases[:n], next(c for c in cases if not c["answerable"])]


def leftovers(root: Path) -> list[str]:
    """Temporary indexes of `rag eval` left in the TMPDIR of `fresh_env` (torch keeps a cache there)."""
    return [p.name for p in (root / "tmp").iterdir() if p.name.startswith("rag-eval-")]


def fresh_env(root: Path) -> dict[str, str]:
    """A data dir nothing was ingested into, and a private TMPDIR to see what is left behind."""
    (root / "tmp").mkdir(parents=True)
    return {**clean_env(root / "data"), "TMPDIR": str(root / "tmp")}


def test_corpus_ingests_into_a_temporary_index(tmp_path: Path) -> None:
    env = fresh_env(tmp_path)
    shutil.copytree(CORPUS, tmp_path / "corpus")
    ghost = {
        "id": "ghost-quote",
        "question": "How much was the Jari deal worth?",
        "answerable": True,
        "facts": [["£3m"]],
        "evidence": ["Imperial College London opened a research campus on the Moon."],
        "tags": ["money"],
    }
    dataset = write_jsonl(tmp_path / "subset.jsonl", [*dev_subset(3), ghost])
    result = rag(
        "eval", str(dataset), "--corpus", "corpus", "--json", "summary.json", "--out", "rows.jsonl",
        "--report", "report.md", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: ghost-quote: evidence quote not in the corpus: "
        "Imperial College London opened a research campus on the Moon."
    ]
    (summary,) = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert (summary["corpus"], summary["cases"], summary["errors"]) == ("corpus", 5, 0)
    assert summary["fact_recall"] > 0 and summary["evidence_recall"] > 0  # the corpus really was indexed
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert [row["id"] for row in rows] == [c["id"] for c in dev_subset(3)] + ["ghost-quote"]
    assert all(c["source"].startswith("corpus/") for row in rows for c in row["citations"])
    assert "## By tag" in (tmp_path / "report.md").read_text(encoding="utf-8")
    # The configured index was never touched, and the temporary one is gone.
    assert not (tmp_path / "data").exists()
    assert leftovers(tmp_path) == []


def test_corpus_errors_exit_2(tmp_path: Path) -> None:
    env = fresh_env(tmp_path)
    dataset = write_jsonl(tmp_path / "subset.jsonl", dev_subset(1))
    result = rag("eval", str(dataset), "--corpus", "no/such/folder", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr == "error: no such corpus: no/such/folder\n"

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "logo.png").write_bytes(PNG_MAGIC)
    result = rag("eval", str(dataset), "--corpus", "images", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "error: no supported documents in the corpus images"
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------
# --all: every suite, one table

NOTE = """# Canteen opening hours

The staff canteen on the second floor opens at 07:30 and closes at 15:00 on weekdays.

On Fridays the canteen serves a hot lunch for £4.50, paid by card only.
"""
NOTE_CASES = [
    {
        "id": "note-1",
        "question": "When does the staff canteen open on weekdays?",
        "answerable": True,
        "facts": [["07:30"]],
        "evidence": ["The staff canteen on the second floor opens at 07:30 and closes at 15:00 on weekdays."],
        "tags": ["time"],
    },
    {
        "id": "note-2",
        "question": "How much is the hot lunch on Fridays?",
        "answerable": True,
        "facts": [["£4.50"]],
        "evidence": ["On Fridays the canteen serves a hot lunch for £4.50, paid by card only."],
    },
    {
        "id": "note-3",
        "question": "Who is the canteen's head chef?",
        "answerable": False,
        "facts": [],
        "evidence": [],
    },
]


def two_suites(root: Path) -> Path:
    """A suites file: part of the dev set on the default corpus (tuning), and a one-note corpus (held out)."""
    evals = root / "evals"
    (evals / "datasets").mkdir(parents=True)
    (evals / "corpora" / "note" / "docs").mkdir(parents=True)
    (evals / "corpora" / "note" / "docs" / "canteen.md").write_text(NOTE, encoding="utf-8")
    write_jsonl(evals / "datasets" / "mini.jsonl", dev_subset(2))
    write_jsonl(evals / "datasets" / "note.jsonl", NOTE_CASES)
    shutil.copytree(CORPUS, root / "corpus")
    suites = evals / "suites.toml"
    suites.write_text(
        '[mini]\ndataset = "datasets/mini.jsonl"\ncorpus = "../corpus"\nrole = "tuning"\n\n'
        '[note]\ndataset = "datasets/note.jsonl"\ncorpus = "corpora/note/docs"\nrole = "held-out"\n',
        encoding="utf-8",
    )
    return suites


SUITE_KEYS = [
    "fact_recall",
    "evidence_recall",
    "mrr",
    "citation_precision_gold",
    "citation_precision",
    "citation_recall",
]
SUITE_HEADER = [
    "suite",
    "cases",
    "fact recall",
    "evidence recall@k",
    "MRR",
    "citation precision (gold)",
    "citation precision (judge)",
    "citation recall",
    "refusal",
    "false refusal",
    "reader top-1",
    "cosine top-1",
    "reader AUC",
    "p50 ms",
]


def test_all_suites_one_table(tmp_path: Path) -> None:
    env = fresh_env(tmp_path)
    suites = two_suites(tmp_path)
    result = rag(
        "eval", "--all", "--suites", str(suites), "--json", "suites.json", "--out", "rows.jsonl",
        "--report", "suites.md", "--k", "3", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warning:" not in result.stderr

    header = next(line for line in result.stdout.splitlines() if line.startswith("┃"))
    assert [c.strip() for c in header.strip("┃").split("┃")] == SUITE_HEADER
    rows = terminal_rows(result.stdout)
    assert [row[0] for row in rows] == ["mini", "note (held out)"]
    assert [row[1] for row in rows] == ["3", "3"]

    summaries = json.loads((tmp_path / "suites.json").read_text(encoding="utf-8"))
    assert [(s["suite"], s["role"], s["held_out"], s["config"], s["k"]) for s in summaries] == [
        ("mini", "tuning", False, "default", 3),
        ("note", "held-out", True, "default", 3),
    ]
    note = summaries[1]
    assert note["corpus"] == str(tmp_path / "evals" / "corpora" / "note" / "docs")
    assert note["cases"] == 3 and note["errors"] == 0
    assert note["evidence_recall"] == 1.0  # a one-document corpus: its evidence is always retrieved
    for summary, row in zip(summaries, rows, strict=True):
        assert row[2:8] == [f"{summary[key]:.3f}" for key in SUITE_KEYS]

    records = read_jsonl(tmp_path / "rows.jsonl")
    assert [(r["suite"], r["id"]) for r in records] == [
        *(("mini", c["id"]) for c in dev_subset(2)),
        *(("note", c["id"]) for c in NOTE_CASES),
    ]
    assert all("config" not in r for r in records)
    assert {c["source"] for r in records if r["suite"] == "note" for c in r["citations"]} <= {
        "evals/corpora/note/docs/canteen.md"
    }

    report = (tmp_path / "suites.md").read_text(encoding="utf-8")
    assert table_header(report.replace("| suite |", "| metric |", 1))[1:] == SUITE_HEADER[1:]
    assert "## Suite: mini" in report and "## Suite: note (held out)" in report
    assert "### Failed cases: default" in report
    assert (tmp_path / "suites.png").read_bytes()[:8] == PNG_MAGIC
    assert not (tmp_path / "data").exists()
    assert leftovers(tmp_path) == []


def test_all_suites_compare_configurations(tmp_path: Path) -> None:
    env = fresh_env(tmp_path)
    suites = two_suites(tmp_path)
    result = rag(
        "eval", "--all", "--suites", str(suites), "--config", "default", "--config", "bm25",
        "--out", "rows.jsonl", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [row[0] for row in terminal_rows(result.stdout)] == [
        "mini · default",
        "mini · bm25",
        "note (held out) · default",
        "note (held out) · bm25",
    ]
    records = read_jsonl(tmp_path / "rows.jsonl")
    assert [(r["suite"], r["config"]) for r in records][::3] == [
        ("mini", "default"),
        ("mini", "bm25"),
        ("note", "default"),
        ("note", "bm25"),
    ]


@pytest.mark.parametrize(
    ("suites_text", "message"),
    [
        pytest.param("[mini\n", "not valid TOML", id="bad-toml"),
        pytest.param(
            '[mini]\ndataset = "d.jsonl"\n', "suite 'mini': missing key(s): corpus, role", id="keys"
        ),
        pytest.param(
            '[mini]\ndataset = "datasets/gone.jsonl"\ncorpus = "../corpus"\nrole = "tuning"\n',
            "suite mini: no dataset file",
            id="no-dataset",
        ),
        pytest.param(
            '[mini]\ndataset = "datasets/mini.jsonl"\ncorpus = "corpora/gone"\nrole = "tuning"\n',
            "suite mini: no corpus",
            id="no-corpus",
        ),
        pytest.param(
            '[mini]\ndataset = "datasets/bad.jsonl"\ncorpus = "../corpus"\nrole = "tuning"\n',
            "suite mini: ",
            id="bad-dataset",
        ),
    ],
)
def test_bad_suites_file_exits_2(tmp_path: Path, suites_text: str, message: str) -> None:
    env = fresh_env(tmp_path)
    suites = two_suites(tmp_path)
    (suites.parent / "datasets" / "bad.jsonl").write_text('{"id": "x"}\n', encoding="utf-8")
    suites.write_text(suites_text, encoding="utf-8")
    result = rag("eval", "--all", "--suites", str(suites), cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "error: give a DATASET to evaluate, or --all", id="nothing"),
        pytest.param([str(DEV), "--all"], "error: give a DATASET or --all, not both", id="both"),
        pytest.param(["--all", "--corpus", "corpus"], "error: --corpus goes with a DATASET", id="all-corpus"),
        pytest.param([str(DEV), "--suites", "s.toml"], "error: --suites goes with --all", id="suites-alone"),
        pytest.param(["--all", "--config", "bm99"], "error: unknown configuration 'bm99'", id="all-config"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = rag("eval", *args, cwd=tmp_path, env=fresh_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
