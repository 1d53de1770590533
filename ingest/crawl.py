"""`rag ingest URL`: a wiki or docs site, crawled over HTTP into the index.

The pages to read come from the site's sitemap (the URL itself when it is one, else the `Sitemap:` lines
of robots.txt, else /sitemap.xml; parsed by ultimate-sitemap-parser), or, without a sitemap, from the links
of the start page followed up to `ingest.crawl_max_depth`. Only pages on the start URL's host are read,
robots.txt is obeyed, and at most `ingest.crawl_max_pages` are fetched. Each page is asked for with its
last ETag / Last-Modified, so an unchanged page costs one small request (304) and embeds nothing. The main
content is extracted by trafilatura (navigation, headers, footers dropped) as Markdown, then indexed as a
file would be (only changed chunks embedded). Pages gone from the site (404/410, or no longer listed or
linked when the crawl was complete) are removed; a page that fails otherwise keeps what was indexed.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from ingest.catalog import Catalog
from ingest.indexer import IngestReport, IngestUsageError, Progress, Skipped, changing
from ingest.loaders import LoaderError, text_document
from rag.embeddings import Embedder
from rag.settings import Settings
from rag.store import VectorStore

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


class _Fetcher:
    def __init__(self, client: httpx.Client, robots: RobotFileParser) -> None:
        self.client, self.robots = client, robots

    def get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response | None:
        try:
            return self.client.get(url, headers=headers or {})
        except httpx.HTTPError:
            return None


def _robots(client: httpx.Client, site: str) -> RobotFileParser:
    parser = RobotFileParser()
    try:
        response = client.get(f"{site}/robots.txt")
    except httpx.HTTPError:
        response = None
    if response is not None and response.status_code == 200:
        parser.parse(response.text.splitlines())
    else:
        parser.parse([])  # no robots.txt: everything is allowed
    return parser


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
        if response is None or response.status_code != 200:
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
    headers = {"User-Agent": f"{AGENT}/0.1"}
    with (
        httpx.Client(headers=headers, timeout=limits.crawl_timeout, follow_redirects=True) as client,
        changing(settings, embedder=embedder, store=store, on_wait=on_wait) as sync,
    ):
        report = sync.report
        fetch = _Fetcher(client, _robots(client, site))
        listed = _sitemap_pages(fetch, start, site)
        queue: deque[tuple[str, int]] = deque((url, 0) for url in (listed or [urldefrag(start).url]))
        queued = {url for url, _ in queue}
        reached: set[str] = set()
        gone: list[str] = []
        validators: dict[str, str] = {}
        complete = True
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
            if response is None or response.status_code >= 500 or response.status_code == 429:
                complete = False  # the site is not fully readable now: unreached pages are kept
                report.skipped.append(Skipped(url, "could not be fetched" if response is None
                                              else f"HTTP {response.status_code}"))  # fmt: skip
                sync.keep(page_key(url))
            elif response.status_code == 304:
                report.pages_unchanged += 1
                sync.keep(page_key(url))
            elif response.status_code in (404, 410):
                gone.append(page_key(url))
            elif response.status_code != 200 or "html" not in response.headers.get("content-type", ""):
                kind = response.headers.get("content-type", "")
                report.ignored.append(Skipped(url, f"HTTP {response.status_code} {kind}".strip()))
                sync.keep(page_key(url))
            elif not _same_site(str(response.url), site):
                report.ignored.append(Skipped(url, f"redirected to another site: {response.url}"))
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
