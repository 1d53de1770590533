"""The API on a wiki, attacked as a probe did (README "Security"): real uvicorn servers on loopback ports,
clients on distinct loopback addresses (127.0.0.x), a real non-loopback address of this machine where a
test needs one.

DNS rebinding (foreign `Host`), a public browser key abused without `Origin` or from one client, failed
keys at full speed, forged X-Forwarded-For, unbounded feedback, internals in error bodies, and the pages'
headers. The browser side (/docs offline, the demo page's key) is in test_widget_browser.py; orders
inside documents in test_reliability.py.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.api import create_app
from rag.errors import UNAVAILABLE
from rag.feedback import FeedbackStore

from .conftest import CORPUS, DefaultIndex
from .test_api import running, server_settings

SERVER, BROWSER = "server-key-1", "browser-key-1"
WIKI = "https://wiki.example.com"


def client(address: str = "127.0.0.1", key: str | None = None, **headers: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127.0.0.x is this machine's loopback)."""
    if key:
        headers["Authorization"] = f"Bearer {key}"
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(transport=transport, headers=headers, timeout=60)


def status(url: str, address: str = "127.0.0.1", key: str | None = None, **headers: str) -> int:
    with client(address, key, **headers) as c:
        return c.get(f"{url}/v1/sources").status_code


def own_address() -> str | None:
    """A non-loopback address of this machine (the one it would reach other hosts from), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, default_index: DefaultIndex) -> Path:
    return default_index.copy(tmp_path_factory.mktemp("security") / "data")


def serve(data_dir: Path, **server: Any) -> Any:
    """A server over `data_dir` with these server settings, listening on server.host (127.0.0.1)."""
    return running(create_app(server_settings(data_dir, server=server)), server.get("host", "127.0.0.1"))


@pytest.fixture(scope="module")
def wiki(data_dir: Path) -> Iterator[str]:
    """A wiki deployment: a server key, a browser key bound to the wiki's origin, small limits."""
    with serve(
        data_dir,
        api_keys=[SERVER],
        browser_keys=[BROWSER],
        cors_origins=[WIKI],
        allowed_hosts=["assistant.example.com"],
        browser_rate_limit_per_minute=3,
        auth_failures_per_minute=3,
        feedback_per_minute=2,
    ) as url:
        yield url


# ---- DNS rebinding ----


def test_a_foreign_host_is_400_before_any_route(wiki: str, data_dir: Path) -> None:
    port = wiki.rsplit(":", 1)[1]
    rebound = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
    with serve(data_dir) as loopback_only:  # no keys: the probe's case
        for url, key in ((loopback_only, None), (wiki, SERVER)):
            for path in ("/v1/sources", "/healthz", "/docs", "/widget/demo"):
                with client(key=key, **rebound) as c:
                    response = c.get(f"{url}{path}")
                assert response.status_code == 400, (url, path)
                assert response.json()["error"]["code"] == "host_not_allowed"
    # the names the server answers to: localhost, its address, and server.allowed_hosts
    for host in (
        f"localhost:{port}",
        f"127.0.0.1:{port}",
        f"assistant.example.com:{port}",
        "ASSISTANT.example.com",
    ):
        assert status(wiki, key=SERVER, Host=host) == 200, host
    same_origin = {"Host": f"assistant.example.com:{port}", "Origin": f"http://assistant.example.com:{port}"}
    assert status(wiki, key=BROWSER, **same_origin) == 200  # the server's own pages on an allowed name


def test_refusals_before_any_route_carry_the_security_headers_and_a_json_body(wiki: str) -> None:
    """Security finding 13: the host check's 400 lacked the security headers, and a refused CORS preflight
    answered in plain text."""
    port = wiki.rsplit(":", 1)[1]
    with client(Host=f"attacker.example:{port}") as c:
        foreign = c.get(f"{wiki}/v1/sources")
    preflight = httpx.options(
        f"{wiki}/v1/ask/stream",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )
    for response in (foreign, preflight):
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["content-security-policy"]
    assert foreign.json()["error"]["code"] == "host_not_allowed"
    assert preflight.json()["error"] == {
        "code": "cors_refused",
        "message": "this cross-origin request is not allowed (origin)",
    }
    assert "access-control-allow-origin" not in preflight.headers


# ---- public browser keys ----


def test_a_browser_key_needs_an_allowed_origin(wiki: str) -> None:
    with client("127.0.0.10", BROWSER) as c:
        bare = c.get(f"{wiki}/v1/sources")
        foreign = c.get(f"{wiki}/v1/sources", headers={"Origin": "https://evil.example.com"})
        listed = c.get(f"{wiki}/v1/sources", headers={"Origin": WIKI})
        own = c.get(f"{wiki}/v1/sources", headers={"Origin": wiki})
    assert (bare.status_code, bare.json()["error"]["code"]) == (403, "origin_required")
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (403, "origin_not_allowed")
    assert listed.status_code == 200 and own.status_code == 200
    assert status(wiki, "127.0.0.10", SERVER) == 200  # a server key needs no origin


def test_one_client_over_its_limit_does_not_lock_out_the_others(wiki: str) -> None:
    # the probe's attack: many requests with the public key and no Origin; they are refused, and count
    # against nobody
    assert {status(wiki, "127.0.0.20", BROWSER) for _ in range(5)} == {403}
    assert [status(wiki, "127.0.0.20", BROWSER, Origin=WIKI) for _ in range(4)] == [200, 200, 200, 429]
    with client("127.0.0.20", BROWSER, Origin=WIKI) as c:
        limited = c.get(f"{wiki}/v1/sources")
    assert (
        limited.json()["error"]["code"] == "rate_limited" and 1 <= int(limited.headers["retry-after"]) <= 60
    )
    assert status(wiki, "127.0.0.21", BROWSER, Origin=WIKI) == 200  # same key, another reader


def test_failed_keys_are_limited_per_client(wiki: str) -> None:
    assert [status(wiki, "127.0.0.30", "wrong") for _ in range(4)] == [401, 401, 401, 429]
    assert status(wiki, "127.0.0.30") == 429  # a missing key is a failure too; the client waits
    assert status(wiki, "127.0.0.31", "wrong") == 401  # another client is not affected


def test_failed_keys_do_not_lock_out_valid_keys_from_the_same_address(wiki: str) -> None:
    """The probe: ten wrong keys from one address (clients behind one NAT), then the server key and a
    wiki reader's browser key from that address still work; wrong keys stay limited."""
    assert [status(wiki, "127.0.0.32", "wrong") for _ in range(10)][-1] == 429
    assert status(wiki, "127.0.0.32", SERVER) == 200
    assert status(wiki, "127.0.0.32", BROWSER, Origin=WIKI) == 200
    assert status(wiki, "127.0.0.32", "wrong") == 429
    assert status(wiki, "127.0.0.31", SERVER) == 200


# ---- forwarded headers ----


def test_forged_forwarded_headers_change_nothing_without_trusted_proxies(wiki: str, data_dir: Path) -> None:
    statuses = [status(wiki, "127.0.0.40", BROWSER, Origin=WIKI) for _ in range(3)]
    forged = [
        status(wiki, "127.0.0.40", BROWSER, Origin=WIKI, **{"X-Forwarded-For": xff})
        for xff in ("127.0.0.2", "1.2.3.4, 127.0.0.5", "203.0.113.9")
    ]
    assert statuses == [200, 200, 200] and forged == [429, 429, 429]
    address = own_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    with serve(data_dir, host="0.0.0.0", allowed_hosts=[address]) as url:  # no keys: loopback clients only
        remote = url.replace("127.0.0.1", address)
        assert status(remote, address) == 403  # a non-loopback client...
        assert status(remote, address, **{"X-Forwarded-For": "1.2.3.4, 127.0.0.5"}) == 403  # ...stays one
        assert status(url) == 200


def test_trusted_proxies_name_the_client(data_dir: Path) -> None:
    with serve(data_dir, trusted_proxies=["127.0.0.1"]) as url:  # no keys: loopback clients only
        assert status(url, **{"X-Forwarded-For": "203.0.113.7"}) == 403  # a remote client behind the proxy
        assert status(url, **{"X-Forwarded-For": "127.0.0.1, 203.0.113.7"}) == 403  # right-most untrusted
        assert status(url, **{"X-Forwarded-For": "127.0.0.9"}) == 200
        assert status(url, "127.0.0.50", **{"X-Forwarded-For": "127.0.0.9"}) == 200  # not from the proxy
    with serve(
        data_dir, trusted_proxies=["127.0.0.0/29"], browser_keys=[BROWSER], cors_origins=[WIKI],
        browser_rate_limit_per_minute=2,
    ) as url:  # fmt: skip
        one = [status(url, key=BROWSER, Origin=WIKI, **{"X-Forwarded-For": "203.0.113.5"}) for _ in range(3)]
        spoofed = {
            "X-Forwarded-For": "198.51.100.1, 203.0.113.5"
        }  # the client's own header, then the proxy's
        assert one == [200, 200, 429] and status(url, key=BROWSER, Origin=WIKI, **spoofed) == 429
        assert status(url, key=BROWSER, Origin=WIKI, **{"X-Forwarded-For": "203.0.113.6"}) == 200


# ---- feedback ----


def test_feedback_is_typed_and_limited_per_client(wiki: str) -> None:
    good = {"rating": 1, "question": "q?", "answer": "a [1]", "citations": [{"marker": 1, "chunk_id": "c"}]}
    bad = [
        {**good, "rating": True},
        {**good, "rating": "1"},
        {**good, "rating": 1.0},
        {**good, "citations": [{"marker": 1, "nested": {"deep": [1, 2, 3]}}]},
        {**good, "citations": [{"marker": True}]},
        {**good, "citations": [{"marker": 1, "start": "4"}]},
    ]
    with client("127.0.0.60", SERVER) as c:
        for body in bad:
            response = c.post(f"{wiki}/v1/feedback", json=body)
            assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request", body
        assert [c.post(f"{wiki}/v1/feedback", json=good).status_code for _ in range(3)] == [201, 201, 429]
    with client("127.0.0.61", SERVER) as c:
        assert c.post(f"{wiki}/v1/feedback", json=good).status_code == 201


def test_feedback_beyond_the_cap_drops_the_oldest_rows(tmp_path: Path, data_dir: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    cap = 1_000_000
    row = {"rating": -1, "question": "q" * 9_000, "answer": "a" * 45_000, "comment": "c" * 4_000}
    with (
        serve(
            data, api_keys=[SERVER], feedback_max_bytes=cap, feedback_per_minute=0, max_body_bytes=100_000
        ) as url,
        client(key=SERVER) as c,
    ):
        ids = [c.post(f"{url}/v1/feedback", json={**row, "question": f"{i} " + row["question"]}).json()["id"]
               for i in range(40)]  # fmt: skip
        health = c.get(f"{url}/healthz").json()
    store = FeedbackStore(data / "feedback.sqlite3")
    kept = [f.id for f in store.all()]
    assert (data / "feedback.sqlite3").stat().st_size <= cap
    assert kept == ids[-len(kept) :] and 10 <= len(kept) < 40  # the newest rows, in order
    assert health["feedback_rows"] == len(kept) and health["feedback_bytes"] <= cap


def test_one_senders_feedback_flood_never_deletes_others_feedback(tmp_path: Path, data_dir: Path) -> None:
    """Security finding 9: 100 posts of ~63 KB from one client had pushed the store over its cap, whose trim
    then deleted everyone's oldest feedback. Now one sender's text is bounded (its own oldest rows make
    room), so the others' rows stay."""
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    row = {"rating": -1, "question": "q" * 9_000, "answer": "a" * 50_000, "comment": "c" * 4_000}
    settings = {
        "feedback_per_minute": 0,
        "rate_limit_per_minute": 0,
        "feedback_max_bytes": 1_000_000,
        "feedback_sender_bytes": 200_000,
    }
    with serve(data, max_body_bytes=100_000, **settings) as url:
        with client("127.0.0.71") as reader:
            own = [reader.post(f"{url}/v1/feedback", json={"rating": 1, "question": f"real {i}", "answer": "a"})
                   for i in range(3)]  # fmt: skip
        with client("127.0.0.70") as flood:
            statuses = {flood.post(f"{url}/v1/feedback", json=row).status_code for _ in range(100)}
    assert statuses == {201} and all(r.status_code == 201 for r in own)
    rows = FeedbackStore(data / "feedback.sqlite3").all()
    assert [f.question for f in rows if f.question.startswith("real")] == ["real 0", "real 1", "real 2"]
    flooded = [f for f in rows if f.question.startswith("q")]
    assert (
        len(flooded) >= 1
        and sum(len(f.question) + len(f.answer) + len(f.comment) for f in flooded) <= 200_000
    )
    assert (data / "feedback.sqlite3").stat().st_size <= 1_000_000


# ---- nothing internal in responses ----


def test_error_bodies_hold_no_path_or_driver_message(tmp_path: Path, data_dir: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(data_dir, broken)
    (broken / "catalog.sqlite3").write_bytes(b"not a database")
    for chroma_file in (broken / "chroma").glob("*.sqlite3"):
        chroma_file.write_bytes(b"not a database")
    internals = [str(tmp_path), "sqlite", "database", "Error", "127.0.0.1:9"]
    with serve(broken, api_keys=[SERVER]) as url, client(key=SERVER) as c:
        responses = [
            c.get(f"{url}/healthz"),
            httpx.get(f"{url}/healthz"),
            c.get(f"{url}/v1/sources"),
            c.post(f"{url}/v1/ask", json={"question": "How much funding was returned?"}),
        ]
    unreachable = create_app(server_settings(tmp_path / "remote", chroma_url="http://127.0.0.1:9"))
    with running(unreachable) as url:
        responses += [httpx.get(f"{url}/healthz"), httpx.post(f"{url}/v1/ask", json={"question": "Why?"})]
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.json()["error"] == {"code": "unavailable", "message": UNAVAILABLE}
        assert not any(word in response.text for word in internals), response.text


def test_no_response_shows_where_files_lie_on_the_server(wiki: str, data_dir: Path) -> None:
    with client(key=SERVER) as c:
        answer = c.post(f"{wiki}/v1/ask", json={"question": "How much funding was returned?"})
        passage = c.get(f"{wiki}/v1/passages/{answer.json()['citations'][0]['chunk_id']}")
        with c.stream("POST", f"{wiki}/v1/ask/stream", json={"question": "Why was it terminated?"}) as stream:
            events = stream.read().decode()
        sources = c.get(f"{wiki}/v1/sources")
    assert passage.json()["metadata"]["source"] == answer.json()["citations"][0]["source"]
    for body in (answer.text, passage.text, events, sources.text):
        assert str(CORPUS.resolve()) not in body and str(data_dir) not in body and '"path"' not in body


def test_every_response_carries_the_security_headers(wiki: str) -> None:
    with client(key=SERVER) as c:
        api = c.get(f"{wiki}/v1/sources")
        pages = [c.get(f"{wiki}/docs"), c.get(f"{wiki}/widget/demo")]
        script = c.get(f"{wiki}/widget.js")
        swagger = c.get(f"{wiki}/docs/swagger-ui-bundle.js")
    for response in (api, script, swagger, *pages):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert api.headers["content-security-policy"].startswith("default-src 'none'; frame-ancestors 'none'")
    for page in pages:
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline'; img" in csp  # styles only, never scripts
        assert csp.endswith(f"frame-ancestors 'self' {WIKI}")  # the wiki may frame it, nobody else
        assert "<script>" not in page.text and "cdn" not in page.text.lower()
    assert swagger.status_code == 200 and len(swagger.content) > 500_000  # Swagger UI from the package


def test_docs_can_be_turned_off(data_dir: Path) -> None:
    with serve(data_dir, docs=False) as url:
        assert httpx.get(f"{url}/docs").status_code == 404
        assert httpx.get(f"{url}/openapi.json").status_code == 404
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_feedback_store_caps_an_existing_file(tmp_path: Path) -> None:
    """A store written before the cap existed (no auto-vacuum) is converted on first use."""
    path = tmp_path / "feedback.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, "
                   "rating INTEGER NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL, citations TEXT NOT NULL, "
                   "comment TEXT NOT NULL, origin TEXT NOT NULL)")  # fmt: skip
        db.executemany(
            "INSERT INTO feedback (created, rating, question, answer, citations, comment, origin) "
            "VALUES (0, 1, ?, ?, '[]', '', 'ui')",
            [(f"old {i}", "x" * 50_000) for i in range(60)],
        )
    store = FeedbackStore(path, max_bytes=1_000_000)
    store.add(1, "new", "y" * 1_000, [])
    assert path.stat().st_size <= 1_000_000
    rows = store.all()
    assert rows[-1].question == "new" and rows[0].question != "old 0"
