"""The document catalog: one SQLite row per ingested file (its full text, so that a citation's span can be
shown in place, and the ids of the chunks its current version is made of), plus the ingest lock that keeps
two ingests from running at once (across replicas, through Redis, when `server.redis_url` is set).

A change of the index is atomic per document: its new chunks are stored first (invisible: no document
names them), then one catalog transaction makes the new versions current and journals what is left to do
to the store (metadata updates, deletions); a change killed before that transaction leaves the old
versions current, one killed after it is finished by the next process that takes the ingest lock
(`rag.index.replica.recover`). Chunks no document names are never retrieved and are deleted then."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.errors import UnavailableError
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
    outline TEXT NOT NULL DEFAULT '[]',
    chunk_ids TEXT
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (id TEXT PRIMARY KEY, meta TEXT);
"""
QUESTIONS = "questions"  # state: the example questions of `Catalog.questions`, with what they were read from
PUBLISH = "publish"  # state: the documents a committed change wrote and removed, to publish to the store


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
    chunk_ids: list[str] | None = None  # its current version's chunks (None: indexed before they were kept)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> DocumentRecord:
        return cls(**json.loads(text))


class CatalogError(UnavailableError):
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
            columns = {row[1] for row in db.execute("PRAGMA table_info(documents)")}
            if "outline" not in columns:  # older files
                db.execute("ALTER TABLE documents ADD COLUMN outline TEXT NOT NULL DEFAULT '[]'")
            if "chunk_ids" not in columns:
                db.execute("ALTER TABLE documents ADD COLUMN chunk_ids TEXT")
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
                "SELECT path, source, title, loader, sha256, '', chunks, meta, ingested_at, '[]', NULL"
                " FROM documents ORDER BY source"
            ).fetchall()
        return [_record(r) for r in rows]

    def clear(self) -> None:
        """Forget every document; a catalog file that is not readable is replaced."""
        try:
            with self._db() as db:
                db.execute("DELETE FROM documents")
                db.execute("DELETE FROM state")
                db.execute("DELETE FROM journal")
        except (CatalogError, sqlite3.DatabaseError):
            self.path.unlink(missing_ok=True)

    def questions(self, limit: int = 4, scanned: int = 200) -> list[str]:
        """Up to `limit` questions the documents ask in their headings ("How do I reset my password?", an
        FAQ's), one per document, from the first `scanned` documents: example questions that fit the corpus.
        Kept in the catalog until its documents change (a page's load and the examples API read one row)."""
        with self._db() as db:
            count, newest = db.execute("SELECT COUNT(*), MAX(ingested_at) FROM documents").fetchone()
        key = json.dumps([count, newest, limit, scanned])
        cached = json.loads(self.state(QUESTIONS) or "{}")
        if cached.get("key") == key:
            return list(cached["questions"])
        found: list[str] = []
        for listed in self.documents()[:scanned]:
            record = self.get(listed.path)
            for block in record.outline if record else []:
                start, end = block.get("start"), block.get("end")
                if block.get("kind") != "heading" or not isinstance(start, int) or not isinstance(end, int):
                    continue
                heading = " ".join(record.text[start:end].split()) if record else ""
                if heading.endswith("?") and 3 <= len(heading.split()) <= 16:
                    found.append(heading)
                    break
            if len(found) >= limit:
                break
        self.set_state(QUESTIONS, json.dumps({"key": key, "questions": found}))
        return found

    def visibility(self) -> Callable[[str, dict[str, object]], bool]:
        """Whether a stored chunk (id, metadata) belongs to a document's current version."""
        with self._db() as db:
            rows = db.execute("SELECT path, chunk_ids FROM documents").fetchall()
        ids: set[str] = set()
        legacy: set[str] = set()  # documents indexed before chunk ids were kept: all their chunks
        for path, chunk_ids in rows:
            if chunk_ids is None:
                legacy.add(str(path))
            else:
                ids.update(json.loads(chunk_ids))
        return lambda cid, meta: cid in ids or str(meta.get("path", "")) in legacy

    def commit(
        self,
        written: Iterable[DocumentRecord],
        removed: list[str],
        updates: Mapping[str, Mapping[str, object]],
        deletes: Iterable[str],
    ) -> None:
        """The commit point of a change, one transaction: the documents' new versions current, the removed
        ones gone, and what is left to do to the store journalled (chunk metadata to update, chunks to
        delete; the documents to publish)."""
        written = list(written)
        with self._db() as db:
            db.executemany(_INSERT, map(_row, written))
            db.executemany("DELETE FROM documents WHERE path = ?", [(p,) for p in removed])
            db.executemany(
                "INSERT OR REPLACE INTO journal VALUES (?, ?)",
                [(i, json.dumps(m)) for i, m in updates.items()] + [(i, None) for i in deletes],
            )
            publish = json.dumps({"written": [r.path for r in written], "removed": removed})
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (PUBLISH, publish))

    def journal(self) -> tuple[dict[str, dict[str, object]], list[str]]:
        """What a committed change left to do to the store: ({chunk id: new metadata}, ids to delete)."""
        with self._db() as db:
            rows = db.execute("SELECT id, meta FROM journal").fetchall()
        updates = {str(i): json.loads(m) for i, m in rows if m is not None}
        return updates, [str(i) for i, m in rows if m is None]

    def finished(self) -> None:
        """The change is done: its journal and markers cleared."""
        with self._db() as db:
            db.execute("DELETE FROM journal")
            db.execute("DELETE FROM state WHERE key = ?", (PUBLISH,))

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


_INSERT = "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _row(r: DocumentRecord) -> tuple[object, ...]:
    return (
        r.path, r.source, r.title, r.loader, r.sha256, r.text, r.chunks, json.dumps(r.meta), r.ingested_at,
        json.dumps(r.outline), None if r.chunk_ids is None else json.dumps(r.chunk_ids),
    )  # fmt: skip


def _record(row: tuple[object, ...]) -> DocumentRecord:
    path, source, title, loader, sha, text, chunks, meta, at, outline, chunk_ids = row
    return DocumentRecord(
        str(path), str(source), str(title), str(loader), str(sha), str(text), int(str(chunks)),
        json.loads(str(meta)), float(str(at)), json.loads(str(outline)),
        None if chunk_ids is None else json.loads(str(chunk_ids)),
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
