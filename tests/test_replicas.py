"""More than one server: two `rag serve` replicas with their own (initially empty) data dirs over one Chroma
server and one Redis, all real processes on loopback. A replica answers from what another ingested; a page
pushed through one is answered by the other; a key's rate limit holds across both; ingests through
different replicas take turns; a replica killed mid-load costs the other nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .conftest import BIN, CORPUS, DefaultIndex, free_port, redis_server, wait_http

REPO = Path(__file__).resolve().parents[1]
HANDBOOK = REPO / "evals" / "corpora" / "handbook" / "docs"
READ, LIMITED, ADMIN = "read-key", "limited-key", "admin-key"
LIMIT = 30  # requests a minute per server key
FUNDING = "How much funding was returned?"


@dataclass
class Replica:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    def ask(self, question: str, key: str = READ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.post(f"{self.url}/v1/ask", json={"question": question}, headers=headers, timeout=120)


@dataclass
class Cluster:
    env: dict[str, str]
    a: Replica
    b: Replica
    root: Path

    def ingest(self, data_dir: Path, *paths: Path) -> subprocess.Popen[str]:
        command = [str(BIN / "rag"), "ingest", "--json", *map(str, paths)]
        env = {**self.env, "RAG_DATA_DIR": str(data_dir)}
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start(env: dict[str, str], data_dir: Path, log: Path) -> Replica:
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "rag"), "serve", "--port", str(port)],
            env={**env, "RAG_DATA_DIR": str(data_dir)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", timeout=120, proc=process)
    return Replica(url, data_dir, process)


@pytest.fixture(scope="module")
def cluster(chroma_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    with redis_server(root / "redis") as redis_url:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k == "RAG_EMBEDDING__CACHE_DIR"
        }
        env |= {
            "RAG_CHROMA_URL": chroma_server,
            "RAG_STORE__COLLECTION": f"replicas-{uuid.uuid4().hex[:12]}",
            "RAG_SERVER__REDIS_URL": redis_url,
            "RAG_SERVER__API_KEYS": f'["{READ}", "{LIMITED}"]',
            "RAG_SERVER__ADMIN_KEYS": f'["{ADMIN}"]',
            "RAG_SERVER__RATE_LIMIT_PER_MINUTE": str(LIMIT),
            "RAG_SERVER__SYNC_SECONDS": "0.5",
        }
        # the default corpus, ingested by a process that is neither replica (its own data dir)
        done = subprocess.run(
            [str(BIN / "rag"), "ingest", str(CORPUS)],
            env={**env, "RAG_DATA_DIR": str(root / "ingester")},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        a = start(env, root / "a", root / "a.log")
        b = start(env, root / "b", root / "b.log")
        try:
            yield Cluster(env, a, b, root)
        finally:
            for replica in (a, b):
                if replica.process.poll() is None:
                    replica.process.terminate()
                    replica.process.wait(timeout=30)


def test_replicas_on_empty_data_dirs_answer_from_the_store(cluster: Cluster) -> None:
    for replica in (cluster.a, cluster.b):
        answer = replica.ask(FUNDING)
        assert answer.status_code == 200 and "£500,000" in answer.json()["answer"]
        # the catalog came from the store too: the documents are listed
        sources = httpx.get(f"{replica.url}/v1/sources", headers={"Authorization": f"Bearer {READ}"})
        titles = " ".join(d["title"] for d in sources.json()["documents"])
        assert sources.status_code == 200 and "Imperial" in titles


def test_a_page_pushed_through_one_replica_is_answered_by_the_other(cluster: Cluster) -> None:
    page = (
        "# Parking\n\nStaff park in the north garage. Every parking permit costs 14 dollars a month and is "
        "renewed at the front desk of building C."
    )
    admin = {"Authorization": f"Bearer {ADMIN}"}
    put = httpx.put(
        f"{cluster.a.url}/v1/documents/parking", json={"content": page}, headers=admin, timeout=120
    )
    assert put.status_code == 200, put.text
    pushed = time.monotonic()
    while True:  # B answers from it, and lists it (its catalog followed)
        answer = cluster.b.ask("How much does a parking permit cost?", key=ADMIN).json()
        listed = httpx.get(f"{cluster.b.url}/v1/documents", headers=admin).json()["documents"]
        if "14 dollars" in answer["answer"] and [d["doc_id"] for d in listed] == ["parking"]:
            break
        assert time.monotonic() - pushed < 5, f"replica B did not follow: {answer}, {listed}"
        time.sleep(0.25)


def test_one_keys_limit_holds_across_both_replicas(cluster: Cluster) -> None:
    headers = {"Authorization": f"Bearer {LIMITED}"}
    statuses = [
        httpx.get(f"{replica.url}/v1/sources", headers=headers).status_code
        for _ in range(LIMIT)
        for replica in (cluster.a, cluster.b)
    ]
    assert statuses.count(200) == LIMIT and statuses.count(429) == LIMIT
    assert statuses[: statuses.index(429)] == [200] * LIMIT  # every success before the first refusal


def test_ingests_through_two_replicas_take_turns(cluster: Cluster, tmp_path: Path) -> None:
    first, second = tmp_path / "handbook-one", tmp_path / "handbook-two"
    pages = sorted(HANDBOOK.glob("*.md"))
    for folder, chosen in ((first, pages[: len(pages) // 2]), (second, pages[len(pages) // 2 :])):
        folder.mkdir()
        for page in chosen:
            shutil.copy(page, folder / page.name)
    runs = [cluster.ingest(cluster.a.data_dir, first), cluster.ingest(cluster.b.data_dir, second)]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    waiting = [i for i, (_, err) in enumerate(outputs) if "another ingest is running; waiting" in err]
    assert len(waiting) == 1, [err for _, err in outputs]  # exactly one waited for the other
    later, earlier = waiting[0], 1 - waiting[0]
    reports = [json.loads(out) for out, _ in outputs]
    assert [r["files_read"] for r in reports] == [
        len(list(first.glob("*.md"))),
        len(list(second.glob("*.md"))),
    ]
    # one after the other, nothing lost or doubled: the later one found the earlier one's chunks in place
    assert reports[later]["chunks_total"] == reports[earlier]["chunks_total"] + reports[later]["chunks_added"]
    assert all(r["chunks_added"] > 0 for r in reports)
    titles = {r["title"] for report in reports for r in report["documents"]}
    for replica in (cluster.a, cluster.b):  # both replicas' catalogs follow
        deadline = time.monotonic() + 5
        while True:
            sources = httpx.get(f"{replica.url}/v1/sources", headers={"Authorization": f"Bearer {READ}"})
            if titles <= {d["title"] for d in sources.json()["documents"]}:
                break
            assert time.monotonic() < deadline, (
                replica.url,
                titles - {d["title"] for d in sources.json()["documents"]},
                len(titles),
            )
            time.sleep(0.25)


def test_killing_one_replica_mid_load_loses_nothing_sent_to_the_other(cluster: Cluster) -> None:
    questions = [FUNDING, "Who terminated the partnership?", "What is Jari?"] * 6

    def ask(question: str) -> int:
        return cluster.b.ask(question, key=ADMIN).status_code

    with ThreadPoolExecutor(4) as pool:
        results = [pool.submit(ask, q) for q in questions]
        time.sleep(0.5)  # mid-load
        cluster.a.process.send_signal(signal.SIGKILL)
        statuses = [r.result() for r in results]
    cluster.a.process.wait(timeout=10)
    assert statuses == [200] * len(questions)


def test_rag_serve_with_two_workers(default_index: DefaultIndex, tmp_path: Path) -> None:
    """`rag serve --workers 2`: two processes on one port over one data dir, each with the index loaded;
    SIGTERM stops all of them."""
    data_dir = default_index.copy(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k == "RAG_EMBEDDING__CACHE_DIR"}
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "rag"), "serve", "--port", str(port), "--workers", "2"],
            env={**env, "RAG_DATA_DIR": str(data_dir)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120, proc=proc)
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda _: httpx.post(
                        f"http://127.0.0.1:{port}/v1/ask", json={"question": FUNDING}, timeout=120
                    ),
                    range(12),
                )
            )
        assert all(a.status_code == 200 and "£500,000" in a.json()["answer"] for a in answers)
        deadline = time.monotonic() + 120  # the second worker may still be loading: wait for it, not a time
        while (tmp_path / "serve.log").read_text().count("Started server process") < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        started = (tmp_path / "serve.log").read_text()
        assert started.count("Started server process") == 2 and "rate limits are counted in each" in started
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
