"""Shared fixtures: every test gets its own data dir and working dir; the real corpus and model are used."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import redis

from ingest.indexer import IngestReport, ingest
from rag.settings import Settings

from .fakellm import FakeLLM

if TYPE_CHECKING:
    from evals.runner import RunResult

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
# One ONNX export of the embedding model for every test's data dir (built once, by the first to need it)
MODELS = REPO / ".rag" / "models"
os.environ["RAG_EMBEDDING__CACHE_DIR"] = str(MODELS)
DEV = REPO / "evals" / "datasets" / "dev.jsonl"
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every data directory at tmp_path and run from there, so nothing touches the checkout."""
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_EMBEDDING__CACHE_DIR", str(MODELS))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A private copy of the default corpus that a test may edit."""
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target


@dataclass(frozen=True)
class DefaultIndex:
    """The default corpus ingested once for the session: its settings and the ingest report."""

    settings: Settings
    report: IngestReport

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def copy(self, data_dir: Path) -> Path:
        """A private copy of the index at `data_dir` (milliseconds, where ingesting again takes seconds),
        for a test that changes it or writes feedback next to it."""
        shutil.copytree(self.data_dir, data_dir)
        return data_dir


@pytest.fixture(scope="session")
def default_index(tmp_path_factory: pytest.TempPathFactory) -> DefaultIndex:
    """The default corpus ingested once for the whole session, for the tests that only read the index (ask,
    eval, serve). A test that corrupts the index or writes feedback into its data dir takes a `copy`; one
    that re-ingests, deletes or adds documents ingests its own. Sources read "corpus/...", as after
    `rag ingest` in the checkout."""
    root = tmp_path_factory.mktemp("default-index")
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("RAG_"):
                patch.delenv(key)
        patch.chdir(root)  # no stray rag.toml
        settings = Settings(data_dir=root / "data")
        patch.chdir(REPO)
        report = ingest([CORPUS], settings)
    return DefaultIndex(settings, report)


@pytest.fixture(scope="session")
def dev_run(default_index: DefaultIndex) -> Callable[[int], RunResult]:
    """The dev set through the default configuration on the session's index at k passages, run once per k:
    the quality gate's dev suite and test_reliability's clean baseline read the same run."""
    from evals.dataset import load_dataset
    from evals.runner import run

    @functools.cache
    def at(k: int) -> RunResult:
        (result,) = run(load_dataset(DEV), default_index.settings, ["default"], k=k)
        return result

    return at


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server on loopback (`chroma run`), for the server-mode tests."""
    path = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    with open(path / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [
                str(BIN / "chroma"),
                "run",
                "--path",
                str(path / "db"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", proc=proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)


REDIS_SERVER = shutil.which("redis-server")


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A `redis-server` on a free loopback port, without persistence; yields its URL once it answers PING."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server; .ci/run does)")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    command = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*command, "--daemonize", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"redis-server exited with {process.returncode}"
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not answer PING"
                time.sleep(0.02)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(params=["embedded", "server"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for the embedded store and for a Chroma server (a fresh collection per test)."""
    if request.param == "server":
        url = request.getfixturevalue("chroma_server")
        return Settings(
            data_dir=tmp_path / "data", chroma_url=url, store={"collection": f"t{uuid.uuid4().hex}"}
        )
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    """A fake OpenAI-compatible server on loopback, one per test module."""
    with FakeLLM.running() as server:
        yield server


@pytest.fixture
def fresh(fake: FakeLLM) -> Iterator[None]:
    """The fake server with no scripted replies or recorded requests; every scripted reply must be used."""
    fake.script.clear()
    fake.requests.clear()
    yield
    assert not fake.script, "scripted replies left unused"
