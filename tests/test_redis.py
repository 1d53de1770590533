"""Replicas sharing one Redis (`server.redis_url`): exact rate limits across them, an ingest lock across
processes, and clear refusals when Redis is down. A real `redis-server` runs on loopback for each test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from rag.api import create_app
from rag.api.access import Access, Attempt
from rag.api.errors import ApiError
from rag.index.catalog import CatalogError, ingest_lock
from rag.settings import ServerSettings, Settings, SettingsError, load_settings

from .conftest import BIN, free_port, redis_server
from .test_api import running, server_settings

KEY = "replica-test-key"
CHROMA = "http://chroma.internal:8000"  # the Chroma server the replicas share (never contacted here)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path / "redis") as url:
        yield url


def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


def server(redis_url: str | None, **fields: Any) -> ServerSettings:
    return ServerSettings(api_keys=[KEY], redis_url=redis_url, **fields)


def attempt(token: str | None = KEY, client: str = "203.0.113.7") -> Attempt:
    return Attempt(client, token, None, "https", "api.example.com")


def outcome(access: Access, token: str | None = KEY) -> int:
    """200 when the request passes the checks, else the status of its error (429 with a Retry-After)."""
    try:
        access.check(attempt(token))
    except ApiError as exc:
        if exc.status == 429:
            assert exc.code == "rate_limited" and exc.headers is not None
            assert 1 <= int(exc.headers["Retry-After"]) <= 60
        return exc.status
    return 200


# ---- settings ----


def test_redis_url_takes_a_redis_address() -> None:
    assert (
        load_settings(server={"redis_url": "rediss://cache:6380/1"}).server.redis_url
        == "rediss://cache:6380/1"
    )
    assert load_settings(server={"redis_url": "unix:///run/redis.sock"}).server.redis_url
    with pytest.raises(SettingsError, match=r"server\.redis_url: .*redis://, rediss:// or unix://") as caught:
        load_settings(server={"redis_url": "http://cache:6379"})
    assert "\n" not in str(caught.value)


# ---- rate limits ----


def test_two_replicas_share_one_limit(redis_url: str) -> None:
    limit = 5
    replicas = [Access(server(redis_url, rate_limit_per_minute=limit)) for _ in range(2)]
    statuses = [outcome(replicas[i % 2]) for i in range(2 * limit)]
    assert statuses == [200] * limit + [429] * limit


def test_in_process_limits_count_per_replica() -> None:
    """The default (no redis_url): each process counts its own window, so two replicas allow twice the
    limit; each still refuses past its own."""
    limit = 5
    replicas = [Access(server(None, rate_limit_per_minute=limit)) for _ in range(2)]
    assert [outcome(replicas[i % 2]) for i in range(2 * limit)] == [200] * (2 * limit)
    assert [outcome(r) for r in replicas] == [429, 429]


def test_concurrent_requests_through_replicas_are_counted_exactly(redis_url: str) -> None:
    limit, replicas = 10, [Access(server(redis_url, rate_limit_per_minute=10)) for _ in range(4)]
    statuses: list[int] = []
    lock = threading.Lock()

    def burst(access: Access) -> None:
        for _ in range(limit):
            status = outcome(access)
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=burst, args=(replicas[i % 4],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(statuses) == 8 * limit
    assert statuses.count(200) == limit and statuses.count(429) == 7 * limit


def test_wrong_keys_are_limited_across_replicas(redis_url: str) -> None:
    replicas = [Access(server(redis_url, auth_failures_per_minute=3)) for _ in range(2)]
    statuses = [outcome(replicas[i % 2], token="wrong") for i in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    assert outcome(replicas[0]) == 200  # failures count against failures only: a valid key still works
    assert outcome(replicas[1], token="wrong") == 429


def test_limits_are_namespaced_per_collection_and_expire(redis_url: str) -> None:
    settings = server(redis_url, rate_limit_per_minute=1)
    assert outcome(Access(settings)) == 200
    assert outcome(Access(settings)) == 429
    assert outcome(Access(settings, collection="other-index")) == 200
    client = redis.Redis.from_url(redis_url)
    keys = sorted(k.decode() for k in client.keys("*"))
    assert keys == ["rag:other-index:limit:requests:key 0", "rag:rag:limit:requests:key 0"]
    assert all(0 < client.pttl(k) <= 60_000 for k in keys)


def test_limits_refuse_with_503_when_redis_is_down(tmp_path: Path) -> None:
    assert outcome(Access(server(dead_url()))) == 503
    with redis_server(tmp_path / "redis") as url:
        access = Access(server(url))
        assert outcome(access) == 200
    with pytest.raises(ApiError) as caught:  # the server stopped: refused, never unlimited
        access.check(attempt())
    error = caught.value
    assert (error.status, error.code) == (503, "limits_unavailable")
    assert "\n" not in error.message and "127.0.0.1" not in error.message


def test_http_replicas_share_the_limit_and_report_redis_down(redis_url: str, tmp_path: Path) -> None:
    """Two apps (replicas) over one Redis, loopback clients without keys, one request a minute."""
    limited = {"rate_limit_per_minute": 1, "redis_url": redis_url}
    first, second = (create_app(server_settings(tmp_path / f"data{i}", server=limited)) for i in range(2))
    path = "/v1/passages/" + "x" * 201  # answered without an index (404) once the checks pass
    with running(first) as one, running(second) as two:
        assert httpx.get(one + path).status_code == 404
        refused = httpx.get(two + path)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    down = create_app(server_settings(tmp_path / "data3", server={"redis_url": dead_url()}))
    with running(down) as url:
        response = httpx.get(url + path)
    assert response.status_code == 503 and response.json()["error"]["code"] == "limits_unavailable"


# ---- the ingest lock ----

HOLDER = """
import json, sys, time
from pathlib import Path
from rag.index.catalog import ingest_lock
from rag.settings import Settings

data_dir, url, ready, hold, ttl = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
settings = Settings(data_dir=data_dir, chroma_url=CHROMA, server={"redis_url": url})
ready.mkdir(exist_ok=True)
(ready / data_dir.name).touch()
while len(list(ready.iterdir())) < int(sys.argv[6]):  # start together
    time.sleep(0.01)
waited = []
with ingest_lock(settings, on_wait=lambda: waited.append(time.time()), ttl=ttl):
    print("held", flush=True)
    entered = time.time()
    time.sleep(hold)
    left = time.time()
print(json.dumps({"entered": entered, "left": left, "waited": len(waited)}), flush=True)
""".replace("CHROMA", repr(CHROMA))


def holder(
    tmp_path: Path, name: str, url: str, hold: float, ttl: float, together: int
) -> subprocess.Popen[str]:
    """A process that takes the ingest lock over its own data dir (another replica's) and holds it."""
    args = [str(tmp_path / name), url, str(tmp_path / "ready"), str(hold), str(ttl), str(together)]
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, *args], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )


def test_ingest_lock_serializes_replicas_with_different_data_dirs(redis_url: str, tmp_path: Path) -> None:
    """Each holds the lock for 2 s with a 1 s TTL: without the shared lock (or without renewal) they
    would overlap."""
    processes = [holder(tmp_path, f"replica{i}", redis_url, hold=2.0, ttl=1.0, together=2) for i in range(2)]
    runs = []
    for process in processes:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        runs.append(json.loads(out.splitlines()[-1]))
    first, second = sorted(runs, key=lambda r: r["entered"])
    assert first["left"] <= second["entered"], runs
    assert (first["waited"], second["waited"]) == (0, 1)  # the waiter was told once


def test_killed_holder_frees_the_lock_within_its_ttl(redis_url: str, tmp_path: Path) -> None:
    ttl = 2.0
    process = holder(tmp_path, "killed", redis_url, hold=120, ttl=ttl, together=1)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        client = redis.Redis.from_url(redis_url)
        (key,) = client.keys("rag:rag:ingest:*")
        time.sleep(ttl * 1.5)  # renewed while the holder lives
        assert 0 < client.pttl(key) <= ttl * 1000
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        killed = time.monotonic()
    finally:
        process.kill()
        process.wait(timeout=10)
    waited: list[bool] = []
    settings = Settings(data_dir=tmp_path / "next", chroma_url=CHROMA, server={"redis_url": redis_url})
    with ingest_lock(settings, on_wait=lambda: waited.append(True)):
        taken = time.monotonic() - killed
        assert client.exists(key)
    assert waited == [True] and taken <= ttl + 0.5
    assert not client.exists(key)  # released


def test_ingest_lock_fails_in_one_line_when_redis_is_down(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", chroma_url=CHROMA, server={"redis_url": dead_url()})
    lock = ingest_lock(settings)
    with pytest.raises(CatalogError, match=r"ingest lock in Redis \(server\.redis_url\)") as caught:
        lock.__enter__()
    assert "\n" not in str(caught.value)


def test_rag_ingest_reports_redis_down_in_one_line(corpus: Path, tmp_path: Path) -> None:
    env = {**os.environ, "RAG_SERVER__REDIS_URL": dead_url(), "RAG_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [str(BIN / "rag"), "ingest", str(corpus)], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 4, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: the ingest lock in Redis (server.redis_url) cannot be taken")
    assert "Traceback" not in result.stderr
