"""The crawler against a hostile site on loopback (security finding 5): what a site sends is bounded in
bytes after decompression and in time, redirects stay on the site (robots.txt and sitemaps included), and
robots.txt is read as RFC 9309 says."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ingest.crawl import crawl
from rag.index.store import VectorStore
from rag.settings import Settings

Route = Callable[[BaseHTTPRequestHandler], None]


def html(title: str, text: str, links: str = "") -> bytes:
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body><main><article><h1>{title}</h1>"
        f"<p>{text}</p>{links}</article></main></body></html>"
    ).encode()


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    if "Content_Length" not in headers:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@dataclass
class Server:
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    url: str = ""


def serve(address: str) -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.requests.append(self.path)
            route = state.routes.get(self.path)
            if route is None:
                return send(self, 404, b"not found", Content_Type="text/plain")
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                route(self)  # the crawler may give up on a response: what some tests want

    server = ThreadingHTTPServer((address, 0), Handler)
    server.daemon_threads = True
    state.url = f"http://{address}:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()


@pytest.fixture
def site() -> Iterator[Server]:
    yield from serve("127.0.0.1")


@pytest.fixture
def other() -> Iterator[Server]:
    """Another host (127.0.0.2 is this machine's loopback too)."""
    yield from serve("127.0.0.2")


def page(title: str, text: str, links: str = "") -> Route:
    return lambda h: send(h, 200, html(title, text, links), Content_Type="text/html; charset=utf-8")


def links(*paths: str) -> str:
    return "".join(f'<a href="{p}">{p}</a> ' for p in paths)


def settings(tmp_path: Path, **ingest: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", ingest={"max_file_mb": 0.05, "crawl_timeout": 1.0, **ingest})


def stored(s: Settings) -> str:
    return " ".join(text for _, text, _ in VectorStore(s).iter_records(include_text=True))


def test_what_a_site_sends_is_bounded(site: Server, other: Server, tmp_path: Path) -> None:
    """A 400 KB page, a gzip bomb of a sitemap (60 MB of zeros in about 60 KB), a page that sends a byte
    every half second, a page redirected to another host: each is given up at its limit with a reason, the
    crawl goes on, and the other host is never asked."""
    bomb = gzip.compress(b"<" + b"\0" * 60_000_000, compresslevel=9)
    assert len(bomb) < 100_000

    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", "1000")
        h.end_headers()
        for _ in range(1000):
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(0.5)

    def chunked_large(h: BaseHTTPRequestHandler) -> None:  # no Content-Length: counted as it arrives
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(html("Big", "Big page. " * 40_000))

    site.routes.update({
        "/robots.txt": lambda h: send(h, 200, f"Sitemap: {site.url}/sitemap.xml\n".encode()),
        "/sitemap.xml": lambda h: send(h, 200, bomb, Content_Type="application/xml", Content_Encoding="gzip"),
        "/": page("Home", "The home page of the team wiki lists its pages.",
                  links("/ok.html", "/big.html", "/chunked.html", "/slow.html", "/away.html")),
        "/ok.html": page("Parking", "Visitor parking is on level minus two, bay 14."),
        "/big.html": page("Big", "Big page. " * 40_000),
        "/chunked.html": chunked_large,
        "/slow.html": trickle,
        "/away.html": lambda h: send(h, 302, Location=f"{other.url}/landing.html"),
    })  # fmt: skip
    other.routes["/landing.html"] = page("Elsewhere", "The other host's page says the bay is 99.")
    s = settings(tmp_path)
    started = time.monotonic()
    report = crawl(f"{site.url}/", s)
    assert time.monotonic() - started < 30
    reasons = {item.source.rsplit("/", 1)[-1]: item.reason for item in [*report.skipped, *report.ignored]}
    assert reasons["big.html"] == reasons["chunked.html"] == "larger than 0.05 MB (ingest.max_file_mb)"
    assert reasons["slow.html"] == "took longer than 1 s"
    assert reasons["away.html"] == f"redirected to another site: {other.url}/landing.html"
    assert other.requests == []
    assert "bay 14" in stored(s) and "bay is 99" not in stored(s) and "Big page" not in stored(s)
    assert [d["source"] for d in report.documents] == [f"{site.url}/", f"{site.url}/ok.html"]


def test_robots_and_sitemaps_are_not_taken_from_another_host(
    site: Server, other: Server, tmp_path: Path
) -> None:
    """robots.txt redirected off the site is not followed (nothing is crawled: its rules are unknown);
    a sitemap redirected off the site is not read (the pages come from the links)."""
    other.routes["/robots.txt"] = lambda h: send(h, 200, f"Sitemap: {other.url}/sitemap.xml\n".encode())
    site.routes.update({
        "/robots.txt": lambda h: send(h, 301, Location=f"{other.url}/robots.txt"),
        "/": page("Home", "The home page of the team wiki says parking is on level two."),
    })  # fmt: skip
    report = crawl(f"{site.url}/", settings(tmp_path))
    assert report.documents == [] and other.requests == []
    assert report.skipped[0].reason.startswith(
        f"robots.txt could not be read (redirected to another site: {other.url}/robots.txt)"
    )
    site.routes["/robots.txt"] = lambda h: send(h, 404)
    site.routes["/sitemap.xml"] = lambda h: send(h, 302, Location=f"{other.url}/sitemap.xml")
    report = crawl(f"{site.url}/", settings(tmp_path))
    assert [d["source"] for d in report.documents] == [f"{site.url}/"] and other.requests == []


@pytest.mark.parametrize(
    ("status", "crawled"), [(503, False), (500, False), (429, False), (404, True), (403, True)]
)
def test_robots_txt_status_as_rfc_9309_says(site: Server, tmp_path: Path, status: int, crawled: bool) -> None:
    """A server error (or 429) reading robots.txt means disallow everything, and what was indexed stays;
    a 4xx means no rules."""
    site.routes.update({
        "/robots.txt": lambda h: send(h, 200, b"User-agent: *\nAllow: /\n"),
        "/": page("Home", "The home page says the parking bay is 14.", links("/a.html")),
        "/a.html": page("A", "Page A says the printer is on floor three."),
    })  # fmt: skip
    s = settings(tmp_path)
    assert len(crawl(f"{site.url}/", s).documents) == 2
    site.routes["/robots.txt"] = lambda h: send(h, status, b"")
    site.routes["/a.html"] = page("A", "Page A now says the printer moved to floor five.")
    site.requests.clear()
    report = crawl(f"{site.url}/", s)
    assert report.files_removed == []
    if crawled:
        assert "floor five" in stored(s)
    else:
        assert site.requests == ["/robots.txt"] and "floor three" in stored(s)
        assert report.skipped[0].reason == (
            f"robots.txt could not be read (HTTP {status}): nothing may be crawled until it can"
        )
