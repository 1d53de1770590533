"""`rag ingest URL`: a wiki or docs site, crawled over HTTP into the index.

The pages to read come from the site's sitemap (the URL itself when it is one, else the `Sitemap:` lines
of robots.txt, else /sitemap.xml; parsed by ultimate-sitemap-parser), or, without a sitemap, from the links
of the start page followed up to `ingest.crawl_max_depth`. Only pages on the start URL's host are read,
robots.txt is obeyed, and at most `ingest.crawl_max_pages` are fetched. Each page is asked for with its
last ETag / Last-Modified, so an unchanged page costs one small request (304) and embeds nothing. The main
content is extracted by trafilatura (navigation, headers, footers dropped) as Markdown, then indexed as a
file would be (only changed chunks embedded). Pages gone from the site (404/410, or no longer listed or
linked when the crawl was complete) are removed; a page that fails otherwise keeps what was indexed.

What a site may send is bounded: every response (page, sitemap) is read as a stream and given up past
`ingest.max_file_mb` after decompression (a gzip bomb is stopped at the limit, never unpacked whole) or
past `ingest.crawl_timeout` seconds in all (a server trickling bytes cannot hold the crawl); redirects are
followed on the site only (at most 5), for robots.txt and sitemaps too. robots.txt as RFC 9309 says:
read up to 500 KiB; a 4xx means no rules; a server error (5xx, 429) or no answer means nothing may be
crawled, and then nothing indexed is removed either.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from ingest.indexer import IngestReport, IngestUsageError, Progress, Skipped, changing
from ingest.loaders import LoaderError, text_document
from rag.index.catalog import Catalog
from rag.index.embeddings import Embedder
from rag.index.store import VectorStore
from rag.settings import Settings

AGENT = "rag-chat"
WEB = "web:"  # the catalog key of a crawled page is WEB + its URL, quoted (never a file path)
STATE = "crawl:"  # catalog state per page URL: its validators and links


def page_key(url: str) -> str:
    return WEB + quote(url, safe="")


def page_url(key: str) -> str:
    return unquote(key.removeprefix(WEB))


def is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def _site(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _same_site(url: str, site: str) -> bool:
    return _site(url) == site


MAX_REDIRECTS = 5
ROBOTS_BYTES = 500 * 1024  # RFC 9309: a crawler parses at least 500 KiB of robots.txt
PIECE = 64 * 1024  # decompressed at most this much at a time


@dataclass(frozen=True)
class Fetched:
    """One GET, read within the crawl's limits: the final URL (after redirects on the site), the status and
    the body; `problem` says why nothing usable came back (too large, too slow, redirected off the site,
    no answer), with status 0."""

    url: str
    status: int
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    body: bytes = b""
    encoding: str = "utf-8"
    problem: str = ""

    @property
    def text(self) -> str:
        try:
            return self.body.decode(self.encoding, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", errors="replace")


class _Fetcher:
    """GETs on one site, each bounded in bytes (after decompression) and in time, redirects on the site only."""

    def __init__(self, client: httpx.Client, site: str, max_bytes: int, seconds: float) -> None:
        self.client, self.site, self.max_bytes, self.seconds = client, site, max_bytes, seconds
        self.robots = RobotFileParser()
        self.robots.parse([])

    def get(self, url: str, headers: dict[str, str] | None = None, *, truncate: int = 0) -> Fetched:
        """`url` fetched; with `truncate`, a body over that many bytes is cut there rather than refused."""
        limit = truncate or self.max_bytes
        for _ in range(MAX_REDIRECTS + 1):
            deadline = time.monotonic() + self.seconds
            try:
                with self.client.stream("GET", url, headers=headers or {}) as response:
                    if response.has_redirect_location:
                        target = urldefrag(urljoin(url, response.headers.get("location", ""))).url
                        if not is_url(target) or not _same_site(target, self.site):
                            return Fetched(url, 0, problem=f"redirected to another site: {target[:200]}")
                        url = target
                        continue
                    declared = response.headers.get("content-length", "")
                    coding = response.headers.get("content-encoding", "identity").strip().lower()
                    if not truncate and coding == "identity" and declared.isdigit() and int(declared) > limit:
                        return Fetched(url, 0, problem=_too_large(limit))
                    body = bytearray()
                    for piece in _decoded(response.iter_raw(), coding):
                        body += piece
                        if len(body) > limit:
                            if truncate:
                                del body[limit:]
                                break
                            return Fetched(url, 0, problem=_too_large(limit))
                        if time.monotonic() > deadline:
                            return Fetched(url, 0, problem=f"took longer than {self.seconds:g} s")
                    encoding = response.charset_encoding or "utf-8"
                    return Fetched(
                        str(response.url), response.status_code, response.headers, bytes(body), encoding
                    )
            except (httpx.HTTPError, zlib.error, ValueError) as exc:
                return Fetched(url, 0, problem=f"could not be fetched ({type(exc).__name__})")
        return Fetched(url, 0, problem=f"more than {MAX_REDIRECTS} redirects")


def _too_large(limit: int) -> str:
    return f"larger than {limit / 1_000_000:g} MB (ingest.max_file_mb)"


def _decoded(raw: Iterator[bytes], coding: str) -> Iterator[bytes]:
    """The body as sent, decompressed a piece at a time (gzip, deflate or none)."""
    if coding in ("identity", ""):
        yield from raw
        return
    if coding in ("gzip", "x-gzip"):
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif coding == "deflate":
        inflate = zlib.decompressobj()
    else:
        raise ValueError(f"unsupported content encoding {coding}")
    for chunk in raw:
        data = chunk
        while data:
            yield inflate.decompress(data, PIECE)
            data = inflate.unconsumed_tail
    yield inflate.flush()


def _robots(fetch: _Fetcher) -> str:
    """Read the site's robots.txt into `fetch.robots` (RFC 9309); returns why nothing may be crawled, if so."""
    fetched = fetch.get(f"{fetch.site}/robots.txt", truncate=ROBOTS_BYTES)
    if fetched.status == 200:
        fetch.robots.parse(fetched.text.splitlines())
        return ""
    if 400 <= fetched.status < 500 and fetched.status != 429:
        return ""  # unavailable: no rules
    fetch.robots.parse(["User-agent: *", "Disallow: /"])  # unreachable: complete disallow
    reason = fetched.problem or f"HTTP {fetched.status}"
    return f"robots.txt could not be read ({reason}): nothing may be crawled until it can"


def _sitemap_pages(fetch: _Fetcher, start: str, site: str) -> list[str] | None:
    """The site's pages listed in its sitemap(s), or None when it has no sitemap (or an empty one)."""
    from usp.objects.sitemap import IndexXMLSitemap, InvalidSitemap
    from usp.tree import sitemap_from_str

    candidates = (
        [start] if start.endswith(".xml") else [*(fetch.robots.site_maps() or []), f"{site}/sitemap.xml"]
    )
    pages: list[str] = []
    queue, found = deque(candidates), False
    seen: set[str] = set()
    while queue and len(seen) < 100:
        url = queue.popleft()
        if url in seen or not _same_site(url, site):
            continue
        seen.add(url)
        response = fetch.get(url)
        if response.status != 200:
            continue
        tree = sitemap_from_str(response.text)
        if isinstance(tree, InvalidSitemap):
            continue
        found = True
        if isinstance(tree, IndexXMLSitemap):
            queue.extend(sub.url for sub in tree.sub_sitemaps)
            continue
        pages.extend(page.url for page in tree.all_pages())
    listed = list(dict.fromkeys(urldefrag(p).url for p in pages if _same_site(p, site)))
    return listed if found and listed else None  # a sitemap that lists none of the site's pages: none


def _links(html: str, base: str, site: str) -> list[str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    links = []
    for anchor in soup.find_all("a", href=True):
        url = urldefrag(urljoin(base, str(anchor["href"]))).url
        if is_url(url) and _same_site(url, site):
            links.append(url)
    return list(dict.fromkeys(links))


def _extract(html: str, url: str) -> tuple[str, str] | None:
    """The page's main content as Markdown, and its title; None when it has none."""
    import trafilatura

    text = trafilatura.extract(
        html, url=url, output_format="markdown", include_comments=False, include_links=False,
        include_images=False, include_tables=True,
    )  # fmt: skip
    if not text or not text.strip():
        return None
    metadata = trafilatura.extract_metadata(html, default_url=url)
    return text, (metadata.title if metadata and metadata.title else "")


def crawl(
    start: str,
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    progress: Progress | None = None,
    on_wait: Callable[[], None] | None = None,
) -> IngestReport:
    """Bring the index in line with the site at `start`; see the module docstring."""
    if not is_url(start) or not urlsplit(start).netloc:
        raise IngestUsageError(f"not an http(s) URL: {start}")
    site, limits = _site(start), settings.ingest
    catalog = Catalog(settings.catalog_path)
    headers = {"User-Agent": f"{AGENT}/0.1", "Accept-Encoding": "gzip, deflate"}
    with (
        httpx.Client(headers=headers, timeout=limits.crawl_timeout, follow_redirects=False) as client,
        changing(settings, embedder=embedder, store=store, on_wait=on_wait) as sync,
    ):
        report = sync.report
        fetch = _Fetcher(client, site, int(limits.max_file_mb * 1_000_000), limits.crawl_timeout)
        barred = _robots(fetch)
        listed = None if barred else _sitemap_pages(fetch, start, site)
        queue: deque[tuple[str, int]] = deque((url, 0) for url in (listed or [urldefrag(start).url]))
        queued = {url for url, _ in queue}
        reached: set[str] = set()
        gone: list[str] = []
        validators: dict[str, str] = {}
        complete = not barred  # robots.txt unreadable: nothing crawled, nothing removed
        if barred:
            report.skipped.append(Skipped(f"{site}/robots.txt", barred))
            queue.clear()
        while queue:
            url, depth = queue.popleft()
            if len(reached) >= limits.crawl_max_pages:
                complete = False
                break
            if not fetch.robots.can_fetch(AGENT, url):
                continue
            reached.add(url)
            if progress:
                progress("reading", len(reached), min(len(reached) + len(queue), limits.crawl_max_pages))
            state = json.loads(catalog.state(STATE + url) or "{}")
            conditional = {}
            if page_key(url) in sync.indexed:  # validators only for a page the index still holds
                conditional = {k: v for k, v in (("If-None-Match", state.get("etag")),
                               ("If-Modified-Since", state.get("last_modified"))) if v}  # fmt: skip
            response = fetch.get(url, conditional)
            links: list[str] = state.get("links", [])
            if response.problem.startswith("redirected to another site"):
                report.ignored.append(Skipped(url, response.problem))
                sync.keep(page_key(url))
            elif response.problem or response.status >= 500 or response.status == 429:
                complete = False  # the site is not fully readable now: unreached pages are kept
                report.skipped.append(Skipped(url, response.problem or f"HTTP {response.status}"))
                sync.keep(page_key(url))
            elif response.status == 304:
                report.pages_unchanged += 1
                sync.keep(page_key(url))
            elif response.status in (404, 410):
                gone.append(page_key(url))
            elif response.status != 200 or "html" not in response.headers.get("content-type", ""):
                kind = response.headers.get("content-type", "")
                report.ignored.append(Skipped(url, f"HTTP {response.status} {kind}".strip()))
                sync.keep(page_key(url))
            elif (extracted := _extract(response.text, str(response.url))) is None:
                links = _links(
                    response.text, str(response.url), site
                )  # a page of links: followed, not indexed
                report.ignored.append(Skipped(url, "no main content (navigation only)"))
                gone.append(page_key(url))
            else:
                links = _links(response.text, str(response.url), site)
                try:
                    markdown, title = extracted
                    sync.put(text_document(page_key(url), url, "markdown", markdown, title, url))
                    validators[url] = json.dumps({
                        "etag": response.headers.get("etag"),
                        "last_modified": response.headers.get("last-modified"),
                        "links": links,
                    })  # fmt: skip
                except LoaderError as exc:
                    report.skipped.append(Skipped(url, str(exc)))
                    sync.keep(page_key(url))
            if listed is None and depth < limits.crawl_max_depth:
                for link in links:
                    if link not in queued:
                        queued.add(link)
                        queue.append((link, depth + 1))
        previous = [key for key in sync.indexed if key.startswith(WEB) and _same_site(page_url(key), site)]
        removed = [key for key in previous if key in gone or (complete and page_url(key) not in reached)]
        sync.remove(removed)
        report.files_removed = [page_url(key) for key in removed]
        sync.commit(catalog, progress)
        for url, value in validators.items():
            catalog.set_state(STATE + url, value)
        catalog.add_roots([start])
    return report
