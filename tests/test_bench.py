"""`rag bench`'s pure parts (synthetic data, the report), and one tiny run through the CLI.

Nothing here times anything: the benchmark reports timings, tests only check what it computes and prints.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from evals import bench_data
from evals.bench import COLD, INGEST, QUALITY, QUERY, ratio, render_markdown, table, targets
from ingest.loaders import load_document
from ingest.threads import parse_thread

from .conftest import BIN, CORPUS


@pytest.fixture(scope="module")
def vocab() -> bench_data.Vocabulary:
    return bench_data.vocabulary_of(CORPUS)


def test_vocabulary_is_the_corpus_words_with_frequencies(vocab: bench_data.Vocabulary) -> None:
    assert {"Imperial", "Jari", "funding", "2019"} <= set(vocab.words)
    assert sum(vocab.weights) == pytest.approx(1.0)
    assert vocab.weights[vocab.words.index("the")] > vocab.weights[vocab.words.index("Jari")]


@pytest.mark.parametrize("count", [1, 7, 60])
def test_paragraphs_are_deterministic_for_a_seed(vocab: bench_data.Vocabulary, count: int) -> None:
    first = bench_data.paragraphs(vocab, count, seed=3)
    assert first == bench_data.paragraphs(vocab, count, seed=3)
    assert len(first) == count
    assert first != bench_data.paragraphs(vocab, count, seed=4)
    assert all(not p[0].islower() and p.endswith(".") and p.count(".") >= 2 for p in first)


def test_written_corpus_has_the_requested_size_and_same_bytes(
    vocab: bench_data.Vocabulary, tmp_path: Path
) -> None:
    one = bench_data.write_corpus(tmp_path / "one", vocab, 260, seed=9)
    two = bench_data.write_corpus(tmp_path / "two", vocab, 260, seed=9)
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]
    articles = [p for p in one if p.suffix == ".md"]
    threads = [p for p in one if p.suffix == ".txt"]
    assert len(articles) == 11 and len(threads) == 1  # 25 paragraphs an article, a thread per 250
    docs = [load_document(p, p.name, 10**7) for p in articles]
    assert sum(len(d.text[d.body_start :].strip().split("\n\n")) for d in docs) == 260
    thread = load_document(threads[0], threads[0].name, 10**7)
    assert thread.loader == "thread"
    comments = parse_thread(threads[0].read_text()).comments
    assert len(comments) == bench_data.THREAD_COMMENTS and comments[0].is_op


def test_synthetic_chunks_are_the_same_for_both_systems(vocab: bench_data.Vocabulary) -> None:
    ours_texts, ours_vectors = bench_data.synthetic_chunks(vocab, 300, real=16, seed=5)
    peer_texts, peer_vectors = bench_data.synthetic_chunks(vocab, 300, real=14, seed=5)
    assert len(ours_texts) == len(ours_vectors) == 284 and len(peer_texts) == 286
    assert peer_texts[:284] == ours_texts and np.array_equal(peer_vectors[:284], ours_vectors)
    assert np.allclose(np.linalg.norm(ours_vectors, axis=1), 1.0, atol=1e-5)
    assert ours_vectors.shape[1] == bench_data.DIMENSION
    assert all(200 < len(t) < 2000 for t in ours_texts)
    metadata = bench_data.synthetic_metadata(ours_texts[:3], first=39)
    assert [m["position"] for m in metadata] == [19, 0, 1]
    assert metadata[0]["end"] == len(ours_texts[0])


def test_edit_one_paragraph_changes_only_that_paragraph(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text("one\n\ntwo\n\nthree\n\nfour\n\nfive")
    original = bench_data.edit_one_paragraph(path)
    assert original == "one\n\ntwo\n\nthree\n\nfour\n\nfive"
    assert path.read_text() == "one\n\ntwo\n\nthree\n\nfour The benchmark edited this paragraph.\n\nfive"


@pytest.mark.parametrize(
    ("ours", "peer", "shown"),
    [
        (1.0, 2.0, "0.50×"),
        (30, 10, "3.00×"),
        (0, 5, "0.00×"),
        (1.0, 0, "–"),
        (None, 1.0, "–"),
        (1.0, "n/a", "–"),
    ],
)
def test_ratio(ours: object, peer: object, shown: str) -> None:
    assert ratio(ours, peer) == shown


def _result() -> dict[str, object]:
    side = {"retrieval": {"p50_ms": 12.0, "p95_ms": 30.0}, "chunks": 10_016, "peak_rss_mb": 500.0}
    return {
        "command": "rag bench --quick",
        "config": {"sizes": [10_000], "paragraphs": 1500, "large_files": 66},
        "machine": {"cpu": "Test CPU", "cores": 2, "ram_gb": 8.0},
        "ingest": {
            "ours": {"cold_large": {"chunks_per_s": 300.0}, "unchanged_default": {"seconds": 0.4, "embedded": 0}},
            "peer": {"cold_large": {"chunks_per_s": 200.0}, "unchanged_default": {"seconds": 2.0, "embedded": 14}},
        },
        "query": {
            "ours": {
                "default": {"answer": {"p50_ms": 80.0}, "quality": {"evidence_recall": 0.97, "evidence_recall@4": 0.9}},
                "10000": side,
            },
            "peer": {"default": {"quality": {"evidence_recall@4": 0.6}}, "10000": side | {"retrieval": {"p50_ms": 24.0}}},
        },
        "cold_ask": {"ours": {"to_answer_s": 7.0}, "peer": {"to_answer_s": 7.0}},
    }  # fmt: skip


def test_targets_are_met_missed_or_not_measured() -> None:
    found = {t["target"]: t["met"] for t in targets(_result())}
    assert found["retrieval p50 at 10,000 chunks"] is False  # 12 ms against 10
    assert found["retrieval p50 at 100,000 chunks"] is None
    assert found["answer p50, default corpus, warm"] is True
    assert found["ingest throughput, larger corpus"] is True
    assert found["chunks embedded by that re-ingest"] is True
    assert found["cold `rag ask` to printed answer"] is False
    assert found["evidence_recall@4 >= the tutorial's"] is True
    assert found["mrr@4 >= the tutorial's"] is None
    assert found["ingest throughput, larger corpus, on CPU"] is True  # 300 chunks/s against 80
    assert found["peak RSS at 100,000 chunks, MB (<= the tutorial's)"] is None  # no 100,000-chunk stage


def test_markdown_shows_ratios_and_what_the_tutorial_cannot_do() -> None:
    result = _result()
    result["targets"] = targets(result)
    text = render_markdown(result)
    assert "| ingest throughput, larger corpus (chunks/s) | 300 | 200 | 1.50× | higher |" in text
    assert (
        "| **10000** (10,016 / 10,016 chunks): retrieval p50 (ms) | 12.00 | 24.00 | 0.50× | lower |" in text
    )
    assert "| re-ingest, unchanged default corpus (s) | 0.400 | 2.00 | 0.20× | lower |" in text
    assert "| fact recall | – | n/a (needs an LLM) | – | higher |" in text
    assert "| cold `rag ask` to printed answer (<= 2 s) | 7.00 s | **no** |" in text
    assert "Test CPU, 2 cores, 8.0 GB RAM" in text and "`rag bench --quick`" in text
    assert "| evidence recall@4 | 0.900 | 0.600 | 1.50× | higher |" in text


def test_every_table_row_names_its_direction() -> None:
    for specs in (INGEST, QUERY, QUALITY, COLD):
        assert table(specs, {}, {})[1] == "|---|---:|---:|---:|---|"
        assert all(better in ("lower", "higher", "") for _, _, better, _ in specs)


def test_tiny_run_through_the_cli(tmp_path: Path) -> None:
    """A run at 200 chunks on a tiny generated corpus, without cold starts (each is a process loading the
    model): the JSON holds every section, an unchanged re-ingest embeds nothing (ours), the tutorial
    re-embeds everything, and the report is written."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_CORPUS_DIR"] = str(CORPUS)
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [str(BIN / "rag"), "bench", "--sizes", "200", "--paragraphs", "30", "--queries", "4", "--cold", "0",
         "--json", str(out), "--workdir", str(tmp_path / "work"), "--write"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert {
        "machine",
        "versions",
        "config",
        "ingest",
        "query",
        "cold_ask",
        "targets",
        "method",
    } <= result.keys()
    ours, peer = result["ingest"]["ours"], result["ingest"]["peer"]
    assert ours["unchanged_default"]["embedded"] == 0 and ours["unchanged_large"]["embedded"] == 0
    assert 1 <= ours["changed_one_file"]["embedded"] <= 2
    assert peer["unchanged_default"]["embedded"] == peer["cold_default"]["chunks"] > 0
    assert ours["fill_200"]["chunks"] == peer["fill_200"]["chunks"] == 200
    for side in ("ours", "peer"):
        assert set(result["query"][side]) == {"default", "200"}
        assert result["query"][side]["200"]["retrieval"]["n"] == 4
    assert result["query"]["ours"]["default"]["answer"]["n"] == 4
    assert "answer" not in result["query"]["peer"]["default"]
    assert result["cold_ask"] == {"question": "How much funding was returned?"}  # --cold 0: none timed
    load = result["http_load"]  # `rag serve` under concurrent questions: reported, never asserted on time
    assert load["errors"] == 0 and load["requests"] == load["n"] > 0 and load["concurrency"] == 20
    assert (tmp_path / "BENCHMARKS.md").read_text().strip() == done.stdout.strip()
