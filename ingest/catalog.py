"""The document catalog: one SQLite row per ingested file (its full text, so that a citation's span can be
shown in place), plus the ingest lock that keeps two ingests from running at once (across replicas, through
Redis, when `server.redis_url` is set)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.settings import Settings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    path TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    loader TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    text TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    meta TEXT NOT NULL,
    ingested_at REAL NOT NULL,
    outline TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class DocumentRecord:
    path: str
    source: str
    title: str
    loader: str
    sha256: str
    text: str
    chunks: int
    meta: dict[str, str]
    ingested_at: float
    outline: list[dict[str, object]] = field(default_factory=list)  # Document.outline(): for display

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> DocumentRecord:
        return cls(**json.loads(text))


class CatalogError(RuntimeError):
    """The catalog file is unreadable."""


class Catalog:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=30)
            db.executescript(_SCHEMA)
            if "outline" not in {row[1] for row in db.execute("PRAGMA table_info(documents)")}:
                db.execute(
                    "ALTER TABLE documents ADD COLUMN outline TEXT NOT NULL DEFAULT '[]'"
                )  # older file
        except sqlite3.DatabaseError as exc:
            raise CatalogError(
                f"the catalog {self.path} is corrupted ({exc}); rebuild it with `rag ingest --reset`"
            ) from None
        try:
            with db:
                yield db
        except sqlite3.DatabaseError as exc:
            raise CatalogError(
                f"the catalog {self.path} is unusable ({exc}); rebuild it with `rag ingest --reset`"
            ) from None
        finally:
            db.close()

    def put(self, record: DocumentRecord) -> None:
        with self._db() as db:
            db.execute(_INSERT, _row(record))

    def replace_documents(self, records: Iterable[DocumentRecord]) -> None:
        """Make the documents exactly `records` (the state is kept), in one transaction."""
        with self._db() as db:
            db.execute("DELETE FROM documents")
            db.executemany(_INSERT, map(_row, records))

    def remove(self, paths: list[str]) -> None:
        with self._db() as db:
            db.executemany("DELETE FROM documents WHERE path = ?", [(p,) for p in paths])

    def get(self, path: str) -> DocumentRecord | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM documents WHERE path = ?", (path,)).fetchone()
        return _record(row) if row else None

    def documents(self) -> list[DocumentRecord]:
        """Every document, without its text (use `get` for that)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT path, source, title, loader, sha256, '', chunks, meta, ingested_at, '[]' FROM documents"
                " ORDER BY source"
            ).fetchall()
        return [_record(r) for r in rows]

    def clear(self) -> None:
        """Forget every document; a catalog file that is not readable is replaced."""
        try:
            with self._db() as db:
                db.execute("DELETE FROM documents")
                db.execute("DELETE FROM state")
        except (CatalogError, sqlite3.DatabaseError):
            self.path.unlink(missing_ok=True)

    def set_state(self, key: str, value: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    def roots(self) -> list[str]:
        """What `rag ingest` was given (folders, files, site URLs), oldest first: what a re-ingest reads."""
        return list(json.loads(self.state("roots") or "[]"))

    def add_roots(self, roots: list[str], reset: bool = False) -> None:
        known = [] if reset else self.roots()
        self.set_state("roots", json.dumps(list(dict.fromkeys([*known, *roots]))))

    def state(self, key: str) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None


_INSERT = "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _row(r: DocumentRecord) -> tuple[object, ...]:
    return (
        r.path, r.source, r.title, r.loader, r.sha256, r.text, r.chunks, json.dumps(r.meta), r.ingested_at,
        json.dumps(r.outline),
    )  # fmt: skip


def _record(row: tuple[object, ...]) -> DocumentRecord:
    path, source, title, loader, sha, text, chunks, meta, at, outline = row
    return DocumentRecord(
        str(path), str(source), str(title), str(loader), str(sha), str(text), int(str(chunks)),
        json.loads(str(meta)), float(str(at)), json.loads(str(outline)),
    )  # fmt: skip


LOCK_TTL = 30.0  # seconds a killed ingest keeps the shared lock (a live one renews it)


class IngestLockError(CatalogError):
    """The ingest lock shared through Redis (`server.redis_url`) cannot be taken."""


@contextlib.contextmanager
def ingest_lock(
    settings: Settings, on_wait: Callable[[], None] | None = None, *, ttl: float = LOCK_TTL
) -> Iterator[None]:
    """Hold an exclusive lock for the duration of an ingest; a second ingest waits for the first (`on_wait`
    is called once when it has to). Without `server.redis_url`, a file lock in the data dir; with it, also a
    lock in Redis per Chroma collection and server, which ingests through other replicas take too."""
    once = _once(on_wait)
    if settings.server.redis_url is None:
        with data_dir_lock(settings.data_dir, once):
            yield
        return
    from rag.shared import Lock, RedisError, connect, namespace, one_line

    where = settings.chroma_url or str(settings.chroma_dir.resolve())
    key = f"{namespace(settings.store.collection)}:ingest:{hashlib.sha256(where.encode()).hexdigest()[:16]}"
    with contextlib.closing(connect(settings.server.redis_url)) as client:
        lock = Lock(client, key, ttl=ttl)
        try:
            lock.acquire(once)
        except RedisError as exc:
            raise IngestLockError(
                f"the ingest lock in Redis (server.redis_url) cannot be taken: {one_line(exc)}"
            ) from None
        try:
            with data_dir_lock(
                settings.data_dir, once
            ):  # the same data dir stays serialized without Redis too
                yield
        finally:
            lock.release()


def _once(call: Callable[[], None] | None) -> Callable[[], None]:
    called = False

    def first() -> None:
        nonlocal called
        if call is not None and not called:
            called = True
            call()

    return first


@contextlib.contextmanager
def data_dir_lock(data_dir: Path, on_wait: Callable[[], None] = lambda: None) -> Iterator[None]:
    """The data dir's own lock: ingests into it, and a server catching up with the store, take turns."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "ingest.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.write(f"{time.time()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
