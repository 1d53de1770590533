"""`rag ingest` as a user runs it: a real process, real model, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .conftest import BIN


def rag(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "rag"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_ingest_json_then_nothing_to_do(corpus: Path) -> None:
    first = rag("ingest", "--json")  # default path: ./corpus
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["files_read"] == 2 and summary["chunks_added"] == summary["chunks_total"] > 4
    assert {d["loader"] for d in summary["documents"]} == {"markdown", "thread"}
    second = rag("ingest", "--json", str(corpus))
    assert second.returncode == 0
    assert json.loads(second.stdout)["chunks_added"] == 0
    human = rag("ingest", str(corpus))
    assert human.returncode == 0 and "0 chunk(s) added" in human.stdout
    assert "reading documents: 2/2" in human.stderr and "embedding" not in human.stderr  # nothing to embed


def test_progress_lines_when_not_on_a_terminal(corpus: Path, tmp_path: Path) -> None:
    """In a log (stderr not a terminal): a plain line as each stage starts and at every tenth of it."""
    result = rag("ingest", str(corpus), env={"RAG_DATA_DIR": str(tmp_path / "fresh")})
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    chunks = json.loads(
        rag("ingest", "--json", str(corpus), env={"RAG_DATA_DIR": str(tmp_path / "fresh")}).stdout
    )["chunks_total"]
    assert lines[0] == "reading documents: 1/2" and "reading documents: 2/2" in lines
    embedding = [line for line in lines if line.startswith("embedding chunks: ")]
    assert (
        embedding[0] == f"embedding chunks: 0/{chunks}"
        and embedding[-1] == f"embedding chunks: {chunks}/{chunks}"
    )
    assert len(embedding) <= 11


def test_failures_exit_1_with_reasons(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "empty.txt").write_text("")
    result = rag("ingest", "--json", str(docs))
    assert result.returncode == 1
    assert json.loads(result.stdout)["skipped"] == [{"source": "docs/empty.txt", "reason": "empty file"}]
    only_images = tmp_path / "images"
    only_images.mkdir()
    (only_images / "a.png").write_bytes(b"\x89PNG")
    result = rag("ingest", str(only_images))
    assert result.returncode == 1 and "no supported documents found" in result.stderr


def test_a_front_matter_bomb_is_skipped_and_nothing_is_stored(tmp_path: Path) -> None:
    """Security finding 2: 333 bytes of nested YAML aliases ran 47 s and wrote 2.7 GB."""
    from .test_loaders import alias_bomb

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bomb.md").write_text(alias_bomb(8))
    (docs / "leave.md").write_text("# Leave\n\nStaff get 25 days of annual leave a year.\n")
    data = tmp_path / "data"
    result = rag("ingest", "--json", str(docs), env={"RAG_DATA_DIR": str(data)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    summary = json.loads(result.stdout)
    assert summary["skipped"] == [
        {"source": "docs/bomb.md", "reason": "front matter uses more than 16 YAML aliases"}
    ]
    assert [d["source"] for d in summary["documents"]] == ["docs/leave.md"]
    assert sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) < 20_000_000


def test_bad_usage_exits_2_with_one_line() -> None:
    result = rag("ingest", "no/such/dir")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: no such file or directory: no/such/dir"
    result = rag("ingest", env={"RAG_INGEST__CHUNK_SIZE": "lots"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "ingest.chunk_size" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupted_index_names_the_fix(corpus: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "chroma").mkdir(parents=True)
    (data / "chroma" / "chroma.sqlite3").write_text("not a database")
    result = rag("ingest", str(corpus))
    assert result.returncode == 4
    assert "rag ingest --reset" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    fixed = rag("ingest", "--reset", "--json", str(corpus))
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["chunks_total"] > 4
