"""Loaders: a file in, a `Document` out (its text, title, kind and, for forum threads, its comments).

A loader is chosen by file extension, or by sniffing the content when the extension is unknown.
Every failure is a `LoaderError` with a one-line reason; callers skip the file and go on.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ingest.structure import Block, Rendered, looks_like_heading, render_html, render_markdown, render_text
from ingest.threads import Thread, ThreadParseError, looks_like_thread, parse_thread


class LoaderError(ValueError):
    """A file that cannot be ingested; the message is the reason, in one line."""


class UnsupportedType(LoaderError):
    """A file whose type no loader handles."""


@dataclass(frozen=True)
class Document:
    """A loaded document: `text` is the plain text that chunk spans index into (markup rendered away);
    `blocks` its structure (headings, paragraphs, list items, table rows, code); `offsets[i]` the offset in
    the file of text[i], for formats read character by character (Markdown, plain text)."""

    path: Path  # absolute, resolved
    source: str  # the path as shown to users
    text: str
    title: str
    loader: str  # markdown | text | html | pdf | thread
    body_start: int = 0  # where the body begins (after front matter)
    meta: dict[str, str] = field(default_factory=dict)  # front matter: publisher, topic, ...
    thread: Thread | None = None
    blocks: list[Block] = field(default_factory=list)
    offsets: list[int] | None = None

    @property
    def kind(self) -> str:
        """page (Markdown, HTML), thread, or document (plain text, PDF)."""
        return _KINDS.get(self.loader, "document")

    def source_span(self, start: int, end: int) -> tuple[int, int] | None:
        """The span of the file that text[start:end] was rendered from (None when unknown)."""
        if self.offsets is None or not 0 <= start < end <= len(self.offsets):
            return None
        return self.offsets[start], self.offsets[end - 1] + 1

    def outline(self) -> list[dict[str, Any]]:
        """The document's structure for display, as spans of `text`: its blocks (heading with its level,
        paragraph, item, row, code), or for a thread its opening text and then each comment with its
        author, votes and reply depth. Kept in the catalog, so the document view can format the text
        without the file."""
        if self.thread is None:
            return [{"start": b.start, "end": b.end, "kind": b.kind, "level": b.level} for b in self.blocks]
        out: list[dict[str, Any]] = []
        if self.thread.preamble:
            out.append(
                {"start": self.thread.preamble[0], "end": self.thread.preamble[1], "kind": "paragraph"}
            )
        by_index = {c.index: c for c in self.thread.comments}
        for c in self.thread.comments:
            parent = by_index[c.parent].author if c.parent is not None else ""
            out.append(
                {
                    "start": c.start, "end": c.end, "kind": "comment", "level": c.depth, "author": c.author,
                    "op": c.is_op, "upvotes": c.upvotes, "downvotes": c.downvotes, "age": c.age,
                    "edited": c.edited, "reply_to": parent,
                }
            )  # fmt: skip
        return out


_KINDS = {"markdown": "page", "html": "page", "thread": "thread"}


def chunk_kinds(loader: str) -> tuple[str, ...]:
    """The `kind`s of the chunks a loader's documents are cut into (what the kind filter offers): a
    thread's chunks are its post and its comments; other documents' chunks have the document's kind."""
    kind = _KINDS.get(loader, "document")
    return ("post", "comment") if kind == "thread" else (kind,)


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.DOTALL)
_SNIFF_BYTES = 8192


def _decode(data: bytes) -> str:
    if not data.strip():
        raise LoaderError("empty file")
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise LoaderError("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoaderError(f"not valid UTF-8 text (bad byte at offset {exc.start})") from None
    # One newline convention, so spans are the same whatever the file's line endings were.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _title_from_path(path: Path) -> str:
    """A title from the file's name, its case kept ("Acme Offer Letter.md"), its first letter upper case
    ("on-call-rota.md" is "On call rota")."""
    name = " ".join(path.stem.replace("_", " ").replace("-", " ").split())
    return name[:1].upper() + name[1:] if name else path.name


# Front matter is a few short fields: bounded before and after YAML reads it (an alias bomb of a few hundred
# bytes expands into gigabytes once its values are turned into text).
FRONT_MATTER_MAX_CHARS = 16_384
FRONT_MATTER_MAX_FIELDS = 64
FRONT_MATTER_MAX_VALUE = 2_000  # characters of one field's value (a list's items joined)
_FRONT_MATTER_MAX_ALIASES = 16
_SCALARS = (str, int, float, bool, datetime.date)
_URL = re.compile(r"https?://\S+", re.IGNORECASE)


def _front_matter(text: str) -> tuple[dict[str, str], int]:
    """The front matter's scalar fields (lists of scalars joined), each bounded, and where the body starts.
    Nested mappings are not kept (nothing reads them); a header that is too large, uses more than a few
    aliases, or holds an oversized value or a `url` that is not http(s) is a `LoaderError`. A header YAML
    cannot parse is text, as before (a `---` rule opening a page is not front matter)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, 0
    if len(match.group(1)) > FRONT_MATTER_MAX_CHARS:
        raise LoaderError(f"front matter longer than {FRONT_MATTER_MAX_CHARS:,} characters")
    import yaml

    class Bounded(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > _FRONT_MATTER_MAX_ALIASES:
                    raise LoaderError(f"front matter uses more than {_FRONT_MATTER_MAX_ALIASES} YAML aliases")
            return super().compose_node(parent, index)

    try:
        data = yaml.load(match.group(1), Loader=Bounded)  # a SafeLoader, bounded
    except yaml.YAMLError:
        return {}, 0
    if not isinstance(data, dict):
        return {}, 0
    if len(data) > FRONT_MATTER_MAX_FIELDS:
        raise LoaderError(f"front matter has more than {FRONT_MATTER_MAX_FIELDS} fields")
    meta: dict[str, str] = {}
    for key, value in data.items():
        if value is None or not isinstance(key, _SCALARS):
            continue
        if isinstance(value, list):
            if not all(isinstance(item, _SCALARS) for item in value):
                continue
            value = ", ".join(str(item) for item in value[:FRONT_MATTER_MAX_VALUE])
        elif not isinstance(value, _SCALARS):
            continue  # a nested mapping: not read by anything
        name, shown = str(key)[:100], str(value)
        if len(shown) > FRONT_MATTER_MAX_VALUE:
            raise LoaderError(
                f"front matter field {name!r} longer than {FRONT_MATTER_MAX_VALUE:,} characters"
            )
        if name == "url" and not _URL.fullmatch(shown):
            raise LoaderError("front matter url is not an http(s) address")
        meta[name] = shown
    return meta, match.end()


def _first_heading(rendered: Rendered) -> str:
    text = rendered.string
    heading = next((b for b in rendered.blocks if b.kind == "heading" and b.level == 1), None)
    return text[heading.start : heading.end] if heading else ""


def _document(
    path: Path, source: str, rendered: Rendered, title: str, loader: str, *, mapped: bool = True, **extra: Any
) -> Document:
    """A Document of rendered text; `mapped` when the rendered offsets point into the file itself."""
    text = rendered.string
    if not text.strip():
        raise LoaderError("no text in document")
    offsets = [*rendered.offsets, rendered.offsets[-1] + 1] if mapped else None
    return Document(
        path, source, text + "\n", title, loader, blocks=rendered.blocks, offsets=offsets, **extra
    )


def load_markdown(path: Path, source: str, data: bytes) -> Document:
    raw = _decode(data)
    meta, body_start = _front_matter(raw)
    if not raw[body_start:].strip():
        raise LoaderError("empty document (front matter only)")
    rendered = render_markdown(raw, body_start)
    title = meta.pop("title", "") or _first_heading(rendered) or _title_from_path(path)
    return _document(path, source, rendered, title, "markdown", meta=meta)


def load_text(path: Path, source: str, data: bytes) -> Document:
    text = _decode(data)
    if looks_like_thread(text):
        return _thread_document(path, source, text)
    return _document(path, source, render_text(text), _title_from_path(path), "text")


def _thread_document(path: Path, source: str, text: str) -> Document:
    try:
        thread = parse_thread(text)
    except ThreadParseError as exc:
        raise LoaderError(f"forum thread not in the expected format: {exc}") from None
    title = f"Forum thread: {_title_from_path(path)}"
    return Document(path, source, text, title, "thread", thread=thread)


def load_thread(path: Path, source: str, data: bytes) -> Document:
    return _thread_document(path, source, _decode(data))


def load_html(path: Path, source: str, data: bytes) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(data), "html.parser")
    title = ""
    for title_tag in soup.find_all("title"):
        title = title or title_tag.get_text(" ", strip=True)
        title_tag.decompose()
    rendered = render_html(soup)
    if not rendered.string.strip():
        raise LoaderError("no text in HTML document")
    title = title or _first_heading(rendered) or _title_from_path(path)
    return _document(path, source, rendered, title, "html", mapped=False)


def load_pdf(path: Path, source: str, data: bytes) -> Document:
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise LoaderError("encrypted PDF")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        info_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoaderError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, AttributeError, IndexError) as exc:
        raise LoaderError(f"broken PDF ({type(exc).__name__})") from None
    text = "\n\n".join(pdf_paragraphs(p) for p in without_running_lines(pages) if p)
    if not text.strip():
        raise LoaderError("PDF has no extractable text (scanned images?)")
    rendered = render_text(text)
    title = str(info_title).strip() or _first_heading(rendered) or _title_from_path(path)
    return _document(path, source, rendered, title, "pdf", mapped=False)


def without_running_lines(pages: list[str]) -> list[str]:
    """Pages without their running headers and footers: lines that recur (digits aside, so "page 3 of
    9" recurs) on at least half of a document's pages, when it has three or more."""
    if len(pages) < 3:
        return pages
    from collections import Counter

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", line.strip())

    counts = Counter(k for page in pages for k in {key(line) for line in page.splitlines() if line.strip()})
    running = {k for k, n in counts.items() if n >= len(pages) / 2}
    return ["\n".join(line for line in page.splitlines() if key(line) not in running) for page in pages]


def pdf_paragraphs(page: str) -> str:
    """A PDF page's lines regrouped into paragraphs (blank-line separated): a line that ends a sentence
    well short of the page's usual line width ends its paragraph, and so does a line before a heading or
    a list item; words hyphenated across lines are joined."""
    lines = [line.rstrip() for line in page.splitlines()]
    lengths = sorted(len(line) for line in lines if line.strip())
    width = lengths[int(len(lengths) * 0.9)] if lengths else 0
    out: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            out.append("\n\n")
            continue
        following = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if out and out[-1] not in ("\n\n", "") and re.match(r"^(?:[•●▪◦‣∙·-]|\d{1,3}[.)])\s", stripped):
            out.append("\n\n")
        out.append(stripped)
        short = len(stripped) < 0.8 * width
        ends = bool(re.search(r"[.!?:]['\"”’)]*$", stripped))
        heading = looks_like_heading(stripped) and (i == 0 or not lines[i - 1].strip() or short)
        if heading or (short and ends) or (following and looks_like_heading(following) and short):
            out.append("\n\n")
        elif re.search(r"[A-Za-z]-$", stripped) and following[:1].islower():
            out[-1] = stripped[:-1]
            out.append("")
        else:
            out.append("\n")
    text = "".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


Loader = Callable[[Path, str, bytes], Document]

LOADERS: dict[str, Loader] = {
    "markdown": load_markdown,
    "text": load_text,
    "thread": load_thread,
    "html": load_html,
    "pdf": load_pdf,
}
EXTENSIONS: dict[str, str] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
}


def sniff(data: bytes) -> str | None:
    """Guess a loader name from the content, for files with an unknown extension."""
    head = data[:_SNIFF_BYTES]
    if head.startswith(b"%PDF-"):
        return "pdf"
    if b"\x00" in head:
        return None
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "html"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the sniff boundary
            return None
    return "text"


def loader_for(path: Path, data: bytes) -> str:
    """The loader name for a file, by extension, else by content; raises `UnsupportedType`."""
    name = EXTENSIONS.get(path.suffix.lower())
    if name == "pdf" or name is None:
        sniffed = sniff(data)
        if name == "pdf" and sniffed != "pdf":
            raise LoaderError("broken PDF (no %PDF header)")
        name = name or sniffed
    if name is None:
        raise UnsupportedType(
            f"unsupported file type {path.suffix or '(no extension)'}; "
            f"supported: {', '.join(sorted(EXTENSIONS))} or plain text"
        )
    return name


def load_document(path: Path, source: str, max_bytes: int) -> Document:
    """Read and parse one file; every failure is a `LoaderError`."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoaderError(f"file too large ({size / 1e6:.1f} MB > {max_bytes / 1e6:.1f} MB limit)")
        data = path.read_bytes()
    except PermissionError:
        raise LoaderError("permission denied") from None
    except OSError as exc:
        raise LoaderError(f"cannot read file: {exc.strerror or exc}") from None
    if not data.strip():
        raise LoaderError("empty file")
    return LOADERS[loader_for(path, data)](path, source, data)


PUSHED = "api:"  # the catalog key of a pushed document is PUSHED + its id (never a file path)


def text_document(
    key: str, source: str, format: str, content: str, title: str = "", url: str = ""
) -> Document:
    """A document that came as text rather than a file (a page pushed through the API or crawled), kept
    under `key` (never a file path): parsed by the loader of its format (markdown, html, text, thread);
    `title` and `url` (kept as its `url` metadata) override what the text says."""
    doc = LOADERS[format](Path(source.rsplit("/", 1)[-1] or source), source, content.encode())
    meta = {**doc.meta, **({"url": url} if url else {})}
    return replace(doc, path=Path(key), title=title or doc.title, meta=meta)


def pushed_document(doc_id: str, format: str, content: str, title: str = "", url: str = "") -> Document:
    """A wiki page pushed through the API, kept under PUSHED + its id."""
    return text_document(PUSHED + doc_id, url or f"documents/{doc_id}", format, content, title, url)
