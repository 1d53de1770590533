"""Incremental ingest: load -> chunk -> diff against the store -> embed only what is new -> upsert/delete.

Why not `langchain_core.indexing.index`: it hashes a document's metadata together with its text, and our
chunks carry their character span and position. Editing one paragraph shifts the spans of every later
chunk of the file, so the indexing API re-embeds all of them (measured on the default article, chunked
900/200: prefixing its third paragraph with a word made `index(..., cleanup="incremental")` re-embed all
10 chunks; this indexer re-embeds 1). Here a chunk id hashes its content only; a chunk whose span or
votes moved gets a metadata update, without re-embedding.

Crash safety: a document's new chunks are stored before anything else changes, invisible until one
catalog transaction makes its new version current (`rag.index.catalog`); questions see the old version or
the new one, never a mix. A run killed before that point leaves the old versions current, and its stored
chunks are reused by the next run (ids are deterministic: nothing is embedded twice) or deleted by it; a
run killed after it is finished by the next process that takes the ingest lock (`rag.index.replica.recover`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from ingest.chunking import Chunk, chunk_document
from ingest.loaders import EXTENSIONS, Document, LoaderError, UnsupportedType, load_document
from rag.errors import UsageError
from rag.index.catalog import Catalog, DocumentRecord, ingest_lock
from rag.index.embeddings import BULK, Embedder, for_index
from rag.index.lexical import index_text
from rag.index.replica import finish, pull_if_behind, recover
from rag.index.store import VectorStore
from rag.settings import Settings

_UPSERT_BATCH = 256


class IngestUsageError(UsageError):
    """Bad arguments to ingest (a path that does not exist)."""


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


@dataclass
class IngestReport:
    files_read: int = 0
    chunks_added: int = 0
    chunks_unchanged: int = 0
    chunks_updated: int = 0  # metadata only (span, position, votes): not re-embedded
    chunks_removed: int = 0
    chunks_total: int = 0
    pages_unchanged: int = 0  # crawled pages the site said were not modified (HTTP 304)
    files_removed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # files that could not be ingested
    ignored: list[Skipped] = field(default_factory=list)  # files of unsupported types found in folders
    documents: list[dict[str, Any]] = field(
        default_factory=list
    )  # per file: source, title, kind, chunks, added
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.skipped) or (
            self.files_read == 0 and not self.files_removed and not self.pages_unchanged
        )

    @property
    def changed(self) -> bool:
        return bool(self.chunks_added or self.chunks_updated or self.chunks_removed)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


def display_path(path: Path, root: Path | None = None) -> str:
    """A path as users see it: relative to the working directory; outside it, relative to the folder it was
    found in (`handbook/leave.md`) or its bare name, so that no absolute path of the server leaves it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        if root is not None and path.is_relative_to(root):
            return str(Path(root.name) / path.relative_to(root))
        return path.name


def discover(paths: Sequence[Path]) -> tuple[dict[Path, str], list[Path], list[Skipped]]:
    """Files to ingest (named files, and supported files found in named folders, hidden ones skipped) as
    {resolved path: the path as the user sees it}, the folders walked, and the files ignored for their type."""
    files: dict[Path, str] = {}
    roots: list[Path] = []
    ignored: list[Skipped] = []
    for given in paths:
        if not given.exists() and not given.is_symlink():
            raise IngestUsageError(f"no such file or directory: {given}")
        path = Path(os.path.realpath(given))
        if not path.is_dir():
            files.setdefault(path, display_path(Path(os.path.abspath(given))))
            continue
        roots.append(path)
        shown = Path(os.path.abspath(given))
        for folder, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                file = Path(folder) / name
                seen = shown / file.relative_to(path)  # as the user named it (not through symlinks)
                if file.suffix.lower() in EXTENSIONS or not file.suffix:
                    files.setdefault(Path(os.path.realpath(file)), display_path(seen, shown))
                else:
                    ignored.append(Skipped(display_path(seen, shown), f"unsupported file type {file.suffix}"))
    return files, roots, ignored


def _under(path: str, roots: Iterable[Path]) -> bool:
    return any(Path(path).is_relative_to(root) for root in roots)


Progress = Callable[[str, int, int], None]  # ("reading", files read, files) or ("embedding", chunks, chunks)
BASE_URL = "base_url:"  # catalog state: the web address a folder's files are published under


def page_address(base_url: str, relative: Path) -> str:
    """The web address of a file published under `base_url`: its path without the extension."""
    return base_url.rstrip("/") + "/" + quote(relative.with_suffix("").as_posix())


class Sync:
    """One change of the index under the ingest lock: documents to (re)index, document keys to keep as
    they are or to remove; `commit` embeds only new chunks, stores them, then makes the new versions
    current in one catalog transaction and finishes (metadata updates, deletions, publishing)."""

    def __init__(
        self, settings: Settings, embedder: Embedder, store: VectorStore, report: IngestReport
    ) -> None:
        self.settings, self.embedder, self.store, self.report = settings, embedder, store, report
        current = Catalog(settings.catalog_path).visibility()
        self.indexed: dict[str, dict[str, dict[str, Any]]] = {}
        self.unused: dict[str, dict[str, dict[str, Any]]] = {}  # stored by a change that never finished
        for cid, _, meta in store.iter_records():
            into = self.indexed if current(cid, meta) else self.unused
            into.setdefault(str(meta.get("path", "")), {})[cid] = meta
        self.to_add: list[Chunk] = []
        self.to_update: list[Chunk] = []
        self.to_delete: list[str] = []
        self.loaded: list[tuple[Document, list[Chunk], int]] = []
        self.removed: list[str] = []

    def put(self, doc: Document) -> None:
        chunks = chunk_document(doc, self.settings.ingest.chunk_size, self.settings.ingest.chunk_overlap)
        old = self.indexed.pop(str(doc.path), {})
        stored = {**self.unused.pop(str(doc.path), {}), **old}
        added = 0
        for chunk in chunks:
            previous = stored.pop(chunk.id, None)
            if previous is None:
                self.to_add.append(chunk)
                added += 1
            elif previous != chunk.metadata:
                self.to_update.append(chunk)
            else:
                self.report.chunks_unchanged += 1
        self.to_delete.extend(stored)
        self.loaded.append((doc, chunks, added))

    def keep(self, key: str) -> None:
        """Leave a document as it was indexed (it could not be read this time: never lose data)."""
        self.indexed.pop(key, None)

    def remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.to_delete.extend(self.indexed.pop(key, {}))
            self.removed.append(key)

    def commit(self, catalog: Catalog, progress: Progress | None = None, reset: bool = False) -> None:
        report, store, total = self.report, self.store, len(self.to_add)
        self.to_delete.extend(cid for chunks in self.unused.values() for cid in chunks)  # never finished
        # a bulk encode at a time (every core: one model batch of 64 ran on one thread, at half the speed),
        # so that progress moves
        step = max(self.settings.embedding.batch_size, BULK)
        if progress and total:
            progress("embedding", 0, total)  # shown before the model loads, not after the first batch
        for start in range(0, total, _UPSERT_BATCH):
            batch = self.to_add[start : start + _UPSERT_BATCH]
            texts = [index_text(c.text, c.metadata) for c in batch]
            parts = []
            for at in range(0, len(texts), step):
                parts.append(self.embedder.encode(texts[at : at + step]))
                if progress:
                    progress("embedding", start + min(at + step, len(texts)), total)
            vectors = np.concatenate(parts)
            store.upsert([c.id for c in batch], vectors, [c.text for c in batch], [c.metadata for c in batch])

        now = time.time()
        written = [
            DocumentRecord(
                str(doc.path), doc.source, doc.title, doc.loader, hashlib.sha256(doc.text.encode()).hexdigest(),
                doc.text, len(chunks), doc.meta, now, doc.outline(), [c.id for c in chunks],
            )
            for doc, chunks, _ in self.loaded
        ]  # fmt: skip
        updates = {c.id: c.metadata for c in self.to_update}
        catalog.commit(written, self.removed, updates, self.to_delete)  # the new versions are current
        for doc, chunks, added in self.loaded:
            report.documents.append(
                {
                    "source": doc.source,
                    "title": doc.title,
                    "loader": doc.loader,
                    "chunks": len(chunks),
                    "added": added,
                }
            )
        report.files_read = len(self.loaded)
        report.chunks_added = len(self.to_add)
        report.chunks_updated = len(self.to_update)
        report.chunks_removed = len(self.to_delete)
        if report.changed or reset:
            catalog.set_state("last_ingest", str(now))
        finish(self.settings, store, catalog, report.changed or reset)
        report.chunks_total = store.count()


@contextlib.contextmanager
def changing(
    settings: Settings,
    report: IngestReport | None = None,
    *,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    on_wait: Callable[[], None] | None = None,
    reset: bool = False,
) -> Iterator[Sync]:
    """The ingest lock held and a `Sync` over the store (emptied first with `reset`); the caller puts,
    keeps, removes and commits; the report's `seconds` count the whole change."""
    started = time.perf_counter()
    store = store or VectorStore(settings)
    report = report or IngestReport()
    with ingest_lock(settings, on_wait):
        recover(settings, store)  # a change killed midway, finished first
        if reset:
            store.reset()
            Catalog(settings.catalog_path).clear()
        else:
            pull_if_behind(settings, store)  # another replica's documents are current too
        if reset or store.count() == 0:  # a new index records the embedding that writes it
            embedder = embedder or Embedder(settings.embedding.for_ingest())
            store.record_info(**embedder.settings.identity())
        embedder = embedder or Embedder(for_index(settings.embedding, store.info()).for_ingest())
        yield Sync(settings, embedder, store, report)
    report.seconds = time.perf_counter() - started


def ingest(
    paths: Sequence[Path],
    settings: Settings,
    *,
    reset: bool = False,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    progress: Progress | None = None,
    on_wait: Callable[[], None] | None = None,
    base_url: str | None = None,
) -> IngestReport:
    """Bring the index in line with `paths`; see the module docstring. With `base_url`, a file found in a
    folder gets the web address base_url + its path in the folder without the extension (a wiki export:
    `Team/On-call.md` -> https://wiki.example.com/Team/On-call), unless its front matter has `url:`; the
    mapping is kept for the folder's next ingests."""
    catalog = Catalog(settings.catalog_path)
    report = IngestReport()
    files, roots, report.ignored = discover(paths)
    with changing(settings, report, embedder=embedder, store=store, on_wait=on_wait, reset=reset) as sync:
        max_bytes = int(settings.ingest.max_file_mb * 1_000_000)
        if base_url:
            for root in roots:
                catalog.set_state(BASE_URL + str(root), base_url)
        bases = {root: catalog.state(BASE_URL + str(root)) for root in roots}
        for read, (file, shown) in enumerate(files.items(), 1):
            if progress:
                progress("reading", read, len(files))
            try:
                doc = load_document(file, shown, max_bytes)
                published = next((r for r in roots if file.is_relative_to(r) and bases[r]), None)
                if published is not None and "url" not in doc.meta:
                    address = page_address(str(bases[published]), file.relative_to(published))
                    doc = replace(doc, meta={**doc.meta, "url": address})
                sync.put(doc)
            except UnsupportedType as exc:
                if _under(str(file), roots):  # found in a folder: not the user's mistake
                    report.ignored.append(Skipped(shown, str(exc)))
                else:
                    report.skipped.append(Skipped(shown, str(exc)))
                sync.keep(str(file))
            except LoaderError as exc:
                report.skipped.append(Skipped(shown, str(exc)))
                sync.keep(str(file))  # keep what was indexed before: never lose data
        # Files indexed from these folders before that are no longer part of them (deleted, renamed).
        removed = [key for key in sync.indexed if _under(key, roots)]
        sync.remove(removed)
        report.files_removed = [display_path(Path(key)) for key in removed]
        sync.commit(catalog, progress, reset)
        catalog.add_roots([os.path.abspath(p) for p in paths], reset)
    return report


def put_document(
    doc: Document, settings: Settings, *, embedder: Embedder | None = None, store: VectorStore | None = None
) -> IngestReport:
    """Index one document that did not come from a file (a wiki page pushed through the API) under the
    ingest lock, with the same guarantees as `ingest`: only new chunks embedded, crash-safe, the lexical
    index brought up to date."""
    with changing(settings, embedder=embedder, store=store) as sync:
        sync.put(doc)
        sync.commit(Catalog(settings.catalog_path))
    return sync.report


def remove_document(
    key: str, settings: Settings, *, embedder: Embedder | None = None, store: VectorStore | None = None
) -> IngestReport:
    """Remove one document (by its catalog key) and its chunks; `files_removed` is empty when it was not
    indexed."""
    with changing(settings, embedder=embedder, store=store) as sync:
        if key in sync.indexed:
            sync.remove([key])
            sync.report.files_removed = [key]
        sync.commit(Catalog(settings.catalog_path))
    return sync.report
