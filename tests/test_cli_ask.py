"""`rag ask` and `rag chat` as a user runs them: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import BIN, DefaultIndex


@pytest.fixture(scope="module")
def data_dir(default_index: DefaultIndex) -> Path:
    """The session's default index (`rag ingest` itself is tested in test_cli_ingest.py); asking only reads it."""
    return default_index.data_dir


def rag(data: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAG_DATA_DIR": str(data)}
    return subprocess.run(
        [str(BIN / "rag"), *args], capture_output=True, text=True, env=env, timeout=300, input=stdin
    )


def test_ask_json_shape(data_dir: Path) -> None:
    result = rag(data_dir, "ask", "How much funding was returned?", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert set(answer) == {"question", "answer", "refused", "citations", "retrieved", "latency_ms"}
    assert "£500,000" in answer["answer"] and answer["refused"] is False
    citation = answer["citations"][0]
    assert set(citation) == {
        "marker",
        "chunk_id",
        "source",
        "title",
        "section",
        "url",
        "kind",
        "author",
        "text",
        "quote",
        "quotes",
        "start",
        "end",
    }
    assert citation["text"][citation["start"] : citation["end"]] == citation["quote"]
    assert citation["quotes"][0] == citation["quote"]
    assert {"chunk_id", "source", "text", "score"} == set(answer["retrieved"][0])


def test_ask_with_history_file(data_dir: Path, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    history.write_text(
        json.dumps(
            [
                {"role": "user", "content": "Who led the Data Science Institute?"},
                {
                    "role": "assistant",
                    "content": "It was led by Prof Guo, an internationally recognised AI researcher.",
                },
            ]
        )
    )
    result = rag(data_dir, "ask", "Where did he go after leaving Imperial?", "--history", str(history))
    assert result.returncode == 0, result.stderr
    assert "Hong Kong University of Science and Technology" in result.stdout
    assert "Sources:" in result.stdout


def test_refusal_lists_related_passages(data_dir: Path) -> None:
    result = rag(data_dir, "ask", "What is Jari's annual revenue?")
    assert result.returncode == 0
    assert "don't contain the answer" in result.stdout and "Related passages" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", ""], "error: the question is empty"),
        (["ask", "   "], "error: the question is empty"),
        (["ask", "x" * 2500], "error: the question is too long"),
        (["ask", "Hi?", "--history", "/no/such/file.json"], "error: cannot read history file"),
        (["ask", "Hi?", "--k", "0"], "Invalid value"),
    ],
)
def test_bad_usage_exits_2(data_dir: Path, args: list[str], message: str) -> None:
    result = rag(data_dir, *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_malformed_history_exits_2(data_dir: Path, tmp_path: Path) -> None:
    for content, message in [
        ("{not json", "not valid JSON"),
        ('{"role": "user"}', "JSON list"),
        ('[{"role": "robot", "content": "x"}]', "turn 1"),
    ]:
        history = tmp_path / "h.json"
        history.write_text(content)
        result = rag(data_dir, "ask", "Hi?", "--history", str(history))
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1


def test_empty_index_exits_3(tmp_path: Path) -> None:
    result = rag(tmp_path / "nothing", "ask", "How much?")
    assert result.returncode == 3
    assert result.stderr.strip() == "error: the index is empty: run `rag ingest` first"


def test_invalid_utf8_argument_is_handled(data_dir: Path) -> None:
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir)}
    result = subprocess.run(
        [
            str(BIN / "rag"),
            "ask",
            b"How much funding was returned? \xff\xfe".decode("utf-8", "surrogateescape"),
        ],
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr.decode()


def test_chat_keeps_the_conversation(data_dir: Path) -> None:
    script = "How much funding did Imperial return?\nWhen was that?\n/new\n\n/quit\n"
    result = rag(data_dir, "chat", stdin=script)
    assert result.returncode == 0, result.stderr
    answers = result.stdout.split("\n> ")
    assert "£500,000" in answers[1] and "October 2021" in answers[2]
    assert "(new conversation)" in result.stdout and result.stdout.count("Sources:") == 2
    assert result.stderr.startswith("loading the model…")  # said before the prompt, not after a silence


def test_terminal_sequences_in_documents_are_not_printed(tmp_path: Path) -> None:
    """A page that clears the screen, sets the window title and hides a link (OSC 8) in its text: `rag ask`
    prints its words without the sequences, and the quote still reads as the page's."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rota.md").write_text(
        "# On-call rota\n\nThe on-call rotation day is \x1b[2J\x1b[HMonday\x1b]0;pwned\x07 at 09:00, "
        "see \x1b]8;;https://evil.example/\x1b\\the rota page\x1b]8;;\x1b\\ for swaps.\u202e\n",
        encoding="utf-8",
    )
    data = tmp_path / "data"
    assert rag(data, "ingest", str(docs)).returncode == 0
    result = rag(data, "ask", "What is the on-call rotation day?")
    assert result.returncode == 0, result.stderr
    assert "Monday" in result.stdout and "the rota page" in result.stdout
    assert not any(ch in result.stdout for ch in "\x1b\x07\x9b\u202e"), repr(result.stdout)
    assert "evil.example" not in result.stdout and "pwned" not in result.stdout
