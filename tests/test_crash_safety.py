"""Changes of the index under stress. One killed (SIGKILL) at any point: questions then see each document's
old version or its new one, never a mix, and the next process finishes or rolls the change back ("a crash
during a write leaves two versions of a page"). One made by another process: a running server sees it
within `server.sync_seconds` ("the server misses pages that another process ingested"). Real processes,
the real model, the embedded store and `rag serve`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ingest.indexer import ingest
from rag.index.catalog import PUBLISH, Catalog
from rag.index.store import VectorStore
from rag.pipeline import build_pipeline
from rag.settings import Settings

from .conftest import BIN, free_port, wait_http
from .test_api import rag_serve

OLD = "# On-call\n\nThe on-call rotation day is Monday. Handovers happen at the morning stand-up.\n"
FILLER = (
    "Section {n} of the runbook describes checks for service {n}: confirm the dashboards for service {n} "
    "are green, read the alerts raised for it in the last day, and write what was found in the log book."
)


def new_version(paragraphs: int) -> str:
    body = "\n\n".join(f"## Check {n}\n\n{FILLER.format(n=n)}" for n in range(paragraphs))
    return f"# On-call\n\nThe on-call rotation day is Friday. Handovers happen by email.\n\n{body}\n"


def check_one_version(settings: Settings, path: Path) -> str:
    """The version questions see ("old" or "new"); fails on a mix. Builds a pipeline as a restarted
    process does (which finishes an interrupted change)."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # as a new process: nothing of the store cached
    pipeline = build_pipeline(settings)
    record = Catalog(settings.catalog_path).get(str(path))
    assert record is not None and record.chunk_ids is not None
    current = set(record.chunk_ids)
    indexed = {r.id for r in pipeline.lexical.records}
    assert indexed == current, "the lexical index holds chunks of another version"
    answer = pipeline.ask("What is the on-call rotation day?")
    quoted = " ".join(c.quote for c in answer.citations)
    retrieved = " ".join(p.text for p in answer.retrieved)
    assert not ("Monday" in retrieved and "Friday" in retrieved), "both versions were retrieved"
    assert ("Monday" in quoted) != ("Friday" in quoted), answer.text
    assert Catalog(settings.catalog_path).state(PUBLISH) is None, "the change was not finished"
    return "old" if "Monday" in quoted else "new"


# Each point of a change where the writer is killed: in the middle of storing the new chunks, right
# after the catalog made the new version current, and in each step that finishes it.
_KILLER = """
import os, signal, sys
from pathlib import Path
from ingest import indexer
from rag.index import replica
from rag.index.catalog import Catalog
from rag.settings import Settings
from rag.index.store import VectorStore

point, folder = sys.argv[1], Path(sys.argv[2])
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
def then_die(call):
    def wrapped(*args, **kwargs):
        call(*args, **kwargs)
        die()
    return wrapped
if point == "storing":  # after the first batch of new chunks
    VectorStore.upsert = then_die(VectorStore.upsert)
elif point == "committed":
    Catalog.commit = then_die(Catalog.commit)
elif point == "updating":
    VectorStore.update_metadata = die
elif point == "deleting":
    VectorStore.delete = die
elif point == "indexing":
    replica.rebuild_lexical = die
elif point == "publishing":
    replica.publish = die
indexer.ingest([folder], Settings())
sys.exit(3)  # not killed: the point was not reached
"""


@pytest.mark.parametrize(
    "point, seen",
    [
        ("storing", "old"),
        ("committed", "new"),
        ("updating", "new"),
        ("deleting", "new"),
        ("indexing", "new"),
        ("publishing", "new"),
    ],
)
def test_ingest_killed_at_each_point_shows_one_version(tmp_path: Path, point: str, seen: str) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    page = folder / "on-call.md"
    # the old version shares its last paragraphs with the new one, moved: their chunks get metadata updates
    shared = "\n\n".join(f"## Check {n}\n\n{FILLER.format(n=n)}" for n in range(40, 44))
    page.write_text(f"{OLD}\n{shared}\n")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([folder], settings)
    assert check_one_version(settings, page.resolve()) == "old"

    page.write_text(new_version(44))
    env = {**os.environ, "RAG_DATA_DIR": str(settings.data_dir)}
    run = subprocess.run(
        [sys.executable, "-c", _KILLER, point, str(folder)], env=env, capture_output=True, timeout=600
    )
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()[-2000:]

    assert check_one_version(settings, page.resolve()) == seen
    # a restart rolled back the change killed before its commit (what it stored is deleted) and finished
    # the others: the next ingest stores the new version again, or has nothing to do
    again = ingest([folder], settings)
    assert (again.chunks_added > 0) == (point == "storing")
    assert check_one_version(settings, page.resolve()) == "new"
    stored = {cid for cid, _, _ in VectorStore(settings).iter_records()}
    record = Catalog(settings.catalog_path).get(str(page.resolve()))
    assert record is not None and stored == set(record.chunk_ids or []), "chunks no version uses were kept"


def _stored(data_dir: Path) -> int:
    """Records in the embedded store's file (chunks and the documents' shelf)."""
    try:
        with sqlite3.connect(data_dir / "chroma" / "chroma.sqlite3", timeout=1) as db:
            return int(db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_put_killed_midway_then_restart_answers_from_one_version(tmp_path: Path) -> None:
    """The probe's request: PUT a page, PUT a 400-chunk new version, kill -9 the server while it stores
    the new chunks, restart: the old version answers, its chunks alone are stored, the list agrees."""
    data = tmp_path / "data"
    key = "admin-key-for-the-crash-test-0123456789"
    env = {**os.environ, "RAG_DATA_DIR": str(data), "RAG_SERVER__ADMIN_KEYS": f'["{key}"]'}
    headers = {"authorization": f"Bearer {key}"}
    page = {"format": "markdown", "title": "On-call"}
    with serving(env, tmp_path / "first.log") as (url, server):
        try:
            first = httpx.put(f"{url}/v1/documents/on-call", json={**page, "content": OLD}, headers=headers)
            assert first.status_code == 200, first.text
            before = _stored(data)
            second = {**page, "content": new_version(400)}
            putting = threading.Thread(
                target=lambda: _quietly(
                    lambda: httpx.put(
                        f"{url}/v1/documents/on-call", json=second, headers=headers, timeout=600
                    )
                )
            )
            putting.start()
            deadline = time.monotonic() + 300
            while _stored(data) < before + 100 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _stored(data) >= before + 100, "the new version was not being stored"
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait()
        putting.join(timeout=60)
    with rag_serve(env, tmp_path / "second.log") as port:
        url = f"http://127.0.0.1:{port}"
        answer = httpx.post(
            f"{url}/v1/ask", json={"question": "What is the on-call rotation day?"}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        quoted = " ".join(c["quote"] for c in body["citations"])
        assert "Monday" in quoted and "Friday" not in quoted, body
        listed = httpx.get(f"{url}/v1/documents", headers=headers).json()["documents"]
        assert [d["chunks"] for d in listed] == [1]
    assert _stored(data) == before, "the interrupted version's chunks were kept"


@contextlib.contextmanager
def serving(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`rag serve` over an index that may be empty (it answers 401 on the documents API once up), until
    the block ends or it is killed; yields its address and process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(BIN / "rag"), "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            wait_http(f"{url}/v1/documents", proc=server)
            yield url, server
        finally:
            if server.poll() is None:
                server.terminate()
            server.wait(timeout=30)


def _quietly(call: Callable[[], object]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call()


def test_a_running_server_sees_what_another_process_ingested(tmp_path: Path) -> None:
    """The probe's steps: serve, push a page and delete one, ingest from another process, ask (dense
    retrieval alone, so that the answer depends on the server's vector index, and filtered to the source)."""
    data, docs = tmp_path / "data", tmp_path / "docs"
    docs.mkdir()
    (docs / "parking.md").write_text("# Parking\n\nVisitors park on level minus two of the north garage.\n")
    key = "admin-key-for-the-follow-test-0123456789"
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(data),
        "RAG_SERVER__ADMIN_KEYS": f'["{key}"]',
        "RAG_SERVER__SYNC_SECONDS": "1",
        "RAG_RETRIEVAL__RETRIEVER": "dense",
    }
    headers = {"authorization": f"Bearer {key}"}
    with serving(env, tmp_path / "serve.log") as (url, _):
        for doc_id, content in (("on-call", OLD), ("lunch", "# Lunch\n\nLunch is served at noon.\n")):
            put = httpx.put(
                f"{url}/v1/documents/{doc_id}",
                json={"format": "markdown", "title": doc_id, "content": content},
                headers=headers,
                timeout=60,
            )
            assert put.status_code == 200, put.text
        assert httpx.delete(f"{url}/v1/documents/lunch", headers=headers).status_code == 200
        assert httpx.post(f"{url}/v1/ask", json={"question": "When is lunch?"}, timeout=60).status_code == 200

        ingested = subprocess.run(
            [str(BIN / "rag"), "ingest", "--json", str(docs)], env=env, capture_output=True, timeout=300
        )
        assert ingested.returncode == 0, ingested.stderr.decode()
        (source,) = [d["source"] for d in json.loads(ingested.stdout)["documents"]]

        question = "Where do visitors park?"
        asks = [{"question": question}, {"question": question, "filters": {"source": source}}]
        deadline = time.monotonic() + 30
        while True:
            answers = [httpx.post(f"{url}/v1/ask", json=ask, timeout=60) for ask in asks]
            assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
            if all("level minus two" in a.json()["answer"] for a in answers):
                break
            assert time.monotonic() < deadline, [a.json() for a in answers]
            time.sleep(0.5)
