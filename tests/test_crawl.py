"""`rag ingest URL` against a real HTTP server on loopback: a generated wiki of 55 pages with a sitemap,
robots.txt, ETags and boilerplate around each page's content; crawled, edited, crawled again."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ingest.crawl import crawl
from rag.index.store import VectorStore
from rag.pipeline import build_pipeline
from rag.settings import Settings

from .conftest import BIN

TOPICS = ["expenses", "travel", "laptops", "holidays", "security", "onboarding", "parking", "printing"]


def page(n: int, body: str | None = None) -> str:
    topic = TOPICS[n % len(TOPICS)]
    text = body or (
        f"The {topic} rule number {n} says that requests for item {n} go to desk {n * 7} on floor {n % 5}. "
        f"Approvals for item {n} take {n % 9 + 1} working days, and the form lives in the {topic} folder."
    )
    return f"""<!doctype html><html><head><title>Wiki: {topic} rule {n}</title></head><body>
<header><nav><a href="/">Home</a> <a href="/pages/1.html">First page</a> Log in · Preferences</nav></header>
<main><article><h1>The {topic} rule {n}</h1><p>{text}</p>
<h2>Contacts</h2><p>Questions about the {topic} rule {n} go to the {topic} team's channel, which answers within a day.</p>
</article></main>
<footer>Copyright Example Corp wiki footer. Powered by WikiSoft.</footer></body></html>"""


@dataclass
class Site:
    pages: dict[str, str] = field(default_factory=dict)  # path -> html
    requests: list[tuple[str, int]] = field(default_factory=list)  # (path, status)
    url: str = ""

    def sitemap(self) -> str:
        urls = "".join(f"<url><loc>{self.url}{p}</loc></url>" for p in self.pages if p.startswith("/pages/"))
        return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site()
    for n in range(1, 56):
        state.pages[f"/pages/{n}.html"] = page(n)
    state.pages["/private/secret.html"] = page(99, "The private rule says the vault code is 4242.")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, status: int, body: str = "", kind: str = "text/html", etag: str = "") -> None:
            state.requests.append((self.path, status))
            data = body.encode()
            self.send_response(status)
            if status == 200:
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                if etag:
                    self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/robots.txt":
                return self.reply(
                    200,
                    f"User-agent: *\nDisallow: /private/\nSitemap: {state.url}/sitemap.xml\n",
                    "text/plain",
                )
            if self.path == "/sitemap.xml":
                return self.reply(200, state.sitemap(), "application/xml")
            html = state.pages.get(self.path)
            if html is None:
                return self.reply(404, "not found", "text/plain")
            etag = '"' + hashlib.sha256(html.encode()).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                return self.reply(304)
            self.reply(200, html, etag=etag)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()


def test_crawl_then_recrawl_embeds_only_what_changed(site: Site, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = crawl(f"{site.url}/", settings)
    assert first.files_read == 55 and first.chunks_added >= 55 and not first.skipped, first.to_dict()
    assert ("/private/secret.html", 200) not in site.requests  # robots.txt is obeyed
    texts = [text for _, text, _ in VectorStore(settings).iter_records(include_text=True)]
    assert not any("Copyright" in t or "Log in" in t for t in texts)  # boilerplate dropped
    assert any("desk 119 on floor 2" in t for t in texts)

    answer = build_pipeline(settings).ask("Where do requests for item 17 go?")
    assert "desk 119" in answer.text and answer.citations[0].passage.url == f"{site.url}/pages/17.html"
    assert answer.citations[0].passage.title == "The travel rule 17"  # the page's heading, not the nav

    for n in (3, 20, 41):
        site.pages[f"/pages/{n}.html"] = page(
            n, f"The rule number {n} was rewritten: item {n} now goes to desk {n * 11}."
        )
    del site.pages["/pages/30.html"]
    site.requests.clear()
    second = crawl(f"{site.url}/pages/1.html", settings)  # any page of the site: the sitemap lists them
    assert second.files_read == 3 and second.pages_unchanged == 51, second.to_dict()
    assert second.files_removed == [f"{site.url}/pages/30.html"]
    # one chunk of each edited page re-embedded (its other chunk only moved); the deleted page's two chunks
    # and the three replaced ones removed; nothing else embedded
    assert (second.chunks_added, second.chunks_removed) == (3, 3 + 2)
    assert [d["added"] for d in second.documents] == [1, 1, 1]
    assert sum(status == 304 for _, status in site.requests) == 51  # one small request per unchanged page

    pipeline = build_pipeline(settings)
    assert "desk 220" in pipeline.ask("Where does item 20 go now?").text
    assert "desk 210" not in " ".join(t for _, t, _ in VectorStore(settings).iter_records(include_text=True))


def test_without_a_sitemap_links_are_followed_to_the_depth_limit(site: Site, tmp_path: Path) -> None:
    for n in range(1, 56):
        del site.pages[f"/pages/{n}.html"]
    for n in range(1, 6):  # a chain: 1 -> 2 -> 3 -> 4 -> 5
        site.pages[f"/chain/{n}.html"] = page(n).replace(
            "</article>", f'<a href="/chain/{n + 1}.html">next</a></article>'
        )
    settings = Settings(data_dir=tmp_path / "data", ingest={"crawl_max_depth": 2})
    report = crawl(f"{site.url}/chain/1.html", settings)
    read = sorted(d["source"].rsplit("/", 1)[-1] for d in report.documents)
    assert read == ["1.html", "2.html", "3.html"], report.to_dict()  # depth 0, 1, 2 (the nav's links 404)


def test_rag_ingest_url(site: Site, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | {
        "RAG_DATA_DIR": str(tmp_path / "d")
    }
    command = [str(BIN / "rag"), "ingest", "--json", f"{site.url}/sitemap.xml"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["files_read"] == 55
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout)["pages_unchanged"] == 55
    bad = subprocess.run(
        [str(BIN / "rag"), "ingest", f"{site.url}/", "corpus"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: crawl one site per run")


def test_crawl_progress_counts_the_pages_found_on_the_way(site: Site, tmp_path: Path) -> None:
    """Without a sitemap the crawl learns of pages as it reads them: its progress lines follow ("1/1",
    "2/3", ... up to what it read), not stop at the first page's "1/1"."""
    for n in range(1, 56):
        del site.pages[f"/pages/{n}.html"]
    for n in range(1, 5):
        site.pages[f"/chain/{n}.html"] = page(n).replace(
            "</article>", f'<a href="/chain/{n + 1}.html">next</a></article>'
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | {
        "RAG_DATA_DIR": str(tmp_path / "d")
    }
    run = subprocess.run(
        [str(BIN / "rag"), "ingest", f"{site.url}/chain/1.html"], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    reading = [
        line.split(": ")[1] for line in run.stderr.splitlines() if line.startswith("reading documents")
    ]
    done, total = (int(x) for x in reading[-1].split("/"))
    assert len(reading) > 2 and done == total >= 4, run.stderr
    assert "4 file(s) read" in run.stdout, run.stdout
