"""The push API a wiki's webhooks call: PUT/DELETE /v1/documents/ID with an admin key, on a real uvicorn
server over a copy of the session's index; questions asked right after each write see it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingest.indexer import ingest
from rag.api import create_app

from .conftest import CORPUS, DefaultIndex
from .test_api import running, server_settings

ADMIN, READ, BROWSER = "admin-key-1", "read-key-1", "browser-key-1"
WIKI = "https://wiki.example.com"
PAGE_URL = f"{WIKI}/Team/On-call"
PAGE = """# On-call rotation

The Zephyr team's on-call rotation changes every Thursday at 09:00.

## Escalation

Pages that are not acknowledged within 15 minutes escalate to the team lead.
"""
QUESTION = "When does the Zephyr team's on-call rotation change?"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, default_index: DefaultIndex) -> Path:
    return default_index.copy(tmp_path_factory.mktemp("push") / "data")


@pytest.fixture(scope="module")
def url(data_dir: Path) -> Iterator[str]:
    server = {
        "api_keys": [READ], "browser_keys": [BROWSER], "admin_keys": [ADMIN], "cors_origins": [WIKI],
        "rate_limit_per_minute": 0, "browser_rate_limit_per_minute": 0, "max_body_bytes": 4096,
        "max_document_bytes": 100_000,
    }  # fmt: skip
    with running(create_app(server_settings(data_dir, server=server))) as base:
        yield base


def as_key(key: str) -> httpx.Client:
    return httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=120)


def test_a_pushed_page_is_answered_from_then_edited_then_deleted(url: str, data_dir: Path) -> None:
    with as_key(ADMIN) as admin, as_key(READ) as reader:
        put = admin.put(f"{url}/v1/documents/team-on-call", json={"content": PAGE, "url": PAGE_URL})
        assert put.status_code == 200, put.text
        assert put.json()["doc_id"] == "team-on-call" and put.json()["added"] == put.json()["chunks"] > 0

        answer = reader.post(f"{url}/v1/ask", json={"question": QUESTION}).json()
        assert "Thursday at 09:00" in answer["answer"] and not answer["refused"]
        (citation,) = answer["citations"]
        assert citation["url"] == PAGE_URL and citation["source"] == PAGE_URL
        assert citation["title"] == "On-call rotation"

        listed = admin.get(f"{url}/v1/documents").json()["documents"]
        assert [(d["doc_id"], d["title"], d["url"]) for d in listed] == [
            ("team-on-call", "On-call rotation", PAGE_URL)
        ]
        again = admin.put(f"{url}/v1/documents/team-on-call", json={"content": PAGE, "url": PAGE_URL})
        assert (again.json()["added"], again.json()["removed"]) == (0, 0)  # unchanged: nothing embedded

        edited = PAGE.replace("Thursday", "Friday")
        change = admin.put(
            f"{url}/v1/documents/team-on-call", json={"content": edited, "url": PAGE_URL}
        ).json()
        assert change["added"] >= 1 and change["removed"] >= 1
        answer = reader.post(f"{url}/v1/ask", json={"question": QUESTION}).json()
        assert "Friday at 09:00" in answer["answer"] and "Thursday" not in answer["answer"]

        # `rag ingest` of other files leaves pushed pages alone
        ingest([CORPUS], server_settings(data_dir))
        assert [d["doc_id"] for d in admin.get(f"{url}/v1/documents").json()["documents"]] == ["team-on-call"]

        gone = admin.delete(f"{url}/v1/documents/team-on-call")
        assert gone.status_code == 200 and gone.json()["removed"] >= 1 and gone.json()["chunks"] == 0
        assert reader.post(f"{url}/v1/ask", json={"question": QUESTION}).json()["refused"]
        assert admin.get(f"{url}/v1/documents").json()["documents"] == []
        missing = admin.delete(f"{url}/v1/documents/team-on-call")
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")


def test_read_keys_cannot_write(url: str) -> None:
    body = {"content": PAGE}
    for key, headers in ((READ, {}), (BROWSER, {"Origin": WIKI})):
        with as_key(key) as c:
            for response in (
                c.put(f"{url}/v1/documents/x", json=body, headers=headers),
                c.delete(f"{url}/v1/documents/x", headers=headers),
                c.get(f"{url}/v1/documents", headers=headers),
            ):
                assert response.status_code == 403, key
                assert response.json()["error"]["code"] == "admin_key_required"
    assert httpx.put(f"{url}/v1/documents/x", json=body).status_code == 401
    with as_key("wrong") as c:
        assert c.put(f"{url}/v1/documents/x", json=body).status_code == 401
    with as_key(ADMIN) as c:  # an admin key reads as a server key does
        assert c.get(f"{url}/v1/sources").status_code == 200
        foreign = c.put(f"{url}/v1/documents/x", json=body, headers={"Origin": "https://evil.example.com"})
        assert foreign.status_code == 403


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/documents/bad%20id", {"content": PAGE}, 422, "invalid_request"),
        ("/v1/documents/.hidden", {"content": PAGE}, 422, "invalid_request"),
        ("/v1/documents/empty", {"content": "  \n"}, 422, "invalid_document"),
        ("/v1/documents/x", {"content": PAGE, "url": "javascript:alert(1)"}, 422, "invalid_request"),
        ("/v1/documents/x", {"content": PAGE, "format": "pdf"}, 422, "invalid_request"),
        (
            "/v1/documents/x",
            {"content": f"---\nurl: javascript:alert(1)\n---\n{PAGE}"},
            422,
            "invalid_document",
        ),
        ("/v1/documents/x", {"content": "x" * 200_000}, 413, "body_too_large"),
    ],
)
def test_bad_documents_are_refused(url: str, path: str, body: dict[str, str], status: int, code: str) -> None:
    with as_key(ADMIN) as admin:
        response = admin.put(f"{url}{path}", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text


def test_a_front_matter_bomb_is_refused_and_nothing_is_stored(url: str) -> None:
    """Security finding 2: 7 levels of YAML aliases (~600 bytes) got 200, then /v1/sources returned 28 MB."""
    from .test_loaders import alias_bomb

    with as_key(ADMIN) as admin:
        before = admin.get(f"{url}/v1/sources").content
        response = admin.put(f"{url}/v1/documents/bomb", json={"content": alias_bomb(7)})
        assert response.status_code == 422
        assert response.json()["error"] == {
            "code": "invalid_document",
            "message": "content: front matter uses more than 16 YAML aliases",
        }
        assert admin.get(f"{url}/v1/sources").content == before
        assert admin.delete(f"{url}/v1/documents/bomb").status_code == 404


def test_a_page_larger_than_a_question_body_is_accepted(url: str) -> None:
    """Documents have their own body limit (server.max_document_bytes), above the questions' one."""
    long_page = PAGE + "\n\n".join(
        f"Paragraph {i} of the runbook says step {i} is optional." for i in range(200)
    )
    assert 4096 < len(long_page) < 100_000
    with as_key(ADMIN) as admin:
        put = admin.put(f"{url}/v1/documents/runbook", json={"content": long_page, "format": "text"})
        assert put.status_code == 200 and put.json()["chunks"] > 1
        assert admin.delete(f"{url}/v1/documents/runbook").status_code == 200


def test_the_key_is_checked_before_the_body_is_read(url: str) -> None:
    """Security finding 8: without an admin key, a PUT announcing a large body is answered at once, from
    its headers, and the body is never read (it had been read up to server.max_document_bytes first)."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(url)
    for key in (None, READ, "wrong"):
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        head = (
            f"PUT /v1/documents/x HTTP/1.1\r\nHost: {where.netloc}\r\n{auth}"
            "Content-Type: application/json\r\nContent-Length: 90000\r\n\r\n"
        )
        with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
            sock.sendall(head.encode() + b'{"content": "')  # and nothing more: the server must not wait
            reply = sock.recv(4096).decode("latin-1")
        status = 403 if key == READ else 401
        assert reply.startswith(f"HTTP/1.1 {status} "), (key, reply[:200])
        assert ('"admin_key_required"' if key == READ else "_key") in reply


def test_the_push_api_is_off_without_admin_keys(data_dir: Path) -> None:
    with (
        running(create_app(server_settings(data_dir, server={"api_keys": [READ]}))) as base,
        as_key(READ) as c,
    ):
        response = c.put(f"{base}/v1/documents/x", json={"content": PAGE})
    assert (response.status_code, response.json()["error"]["code"]) == (403, "push_disabled")
