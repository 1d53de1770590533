"""One index, many processes: the store is the source of truth, a data dir is a replica's cache of it.

Chroma holds the chunks and, in a companion collection, the documents themselves (their catalog records).
Each change of the index (an ingest, a crawl, a pushed or deleted page, from any process on any machine)
ends by writing a new `index_version` into the collection's metadata. A process whose data dir was made
at another version (its BM25 index, chunk records and document catalog) rebuilds them from the store
(`catch_up`); a server checks the version every `server.sync_seconds`. So a replica started on an empty
data dir against a filled Chroma server answers without `rag ingest`, and a page pushed through one
replica is answered by the others.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict
from typing import cast

from rag.index.catalog import PUBLISH, Catalog, DocumentRecord, data_dir_lock, ingest_lock
from rag.index.lexical import LexicalIndex, read_stamp, rebuild, stamp
from rag.index.store import Metadata, VectorStore
from rag.settings import Settings

VERSION = "index_version"  # the key in the collection's metadata
_LOCAL = "store_version"  # the file in the data dir: the version its lexical index and catalog reflect


def local_version(settings: Settings) -> str | None:
    try:
        return (settings.data_dir / _LOCAL).read_text().strip() or None
    except OSError:
        return None


def _mark(settings: Settings, version: str | None) -> None:
    path = settings.data_dir / _LOCAL
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{_LOCAL}.tmp")
    tmp.write_text(version or "")
    tmp.rename(path)


def store_version(store: VectorStore, info: Metadata | None = None) -> str | None:
    """The index version the store holds (from `info`, the store's metadata, when the caller has it)."""
    value = (store.info() if info is None else info).get(VERSION)
    return str(value) if value is not None else None


def _pull_catalog(settings: Settings, store: VectorStore) -> None:
    """This data dir's document catalog made exactly the documents the store holds."""
    records = (DocumentRecord.from_json(text) for _, text in store.iter_documents())
    Catalog(settings.catalog_path).replace_documents(records)


def catch_up(settings: Settings, store: VectorStore, info: Metadata | None = None) -> bool:
    """Rebuild this data dir's lexical index and document catalog from the store when another process
    changed the index since they were made; True when it did. (The version is read before the data, so a
    change made meanwhile is caught by the next call, never lost.) `info`: the store's metadata, when the
    caller has just read it."""
    current = store_version(store, info)
    if current == local_version(settings):
        return False
    with data_dir_lock(settings.data_dir):  # not while an ingest writes this data dir, nor twice at once
        if current == local_version(settings):
            return False  # another process of this data dir did it meanwhile
        _pull_catalog(settings, store)
        rebuild_lexical(settings, store)
        _mark(settings, current)
    return True


def pull_if_behind(settings: Settings, store: VectorStore) -> None:
    """Under the ingest lock, before deciding which stored chunks are current: this data dir's catalog made
    the store's when another process changed the index since it was made (its chunks are current)."""
    if store_version(store) != local_version(settings):
        _pull_catalog(settings, store)


def rebuild_lexical(settings: Settings, store: VectorStore) -> LexicalIndex:
    """This data dir's lexical index made from the store's chunks of the documents' current versions (not
    those a change is storing, or stored and never finished)."""
    current = Catalog(settings.catalog_path).visibility()
    records = store.iter_records(include_text=True)
    return rebuild(settings.lexical_dir, ((i, t, m) for i, t, m in records if current(i, m)))


def finish(settings: Settings, store: VectorStore, catalog: Catalog, changed: bool) -> None:
    """Finish a committed change (under the ingest lock): the chunk metadata updates and deletions its
    journal holds done, the lexical index rebuilt, the documents published; each step can be repeated, so
    a change killed midway is finished by running this again (`recover`)."""
    updates, deletes = catalog.journal()
    if updates:
        store.update_metadata(list(updates), [cast(Metadata, updates[i]) for i in updates])
    if deletes:
        store.delete(deletes)
    state = json.loads(catalog.state(PUBLISH) or '{"written": [], "removed": []}')
    if changed or read_stamp(settings.lexical_dir) != stamp(_current_ids(catalog, store)):
        rebuild_lexical(settings, store)
    written = [r for path in state["written"] if (r := catalog.get(path)) is not None]
    publish(settings, store, written, state["removed"], changed)
    catalog.finished()


def _current_ids(catalog: Catalog, store: VectorStore) -> set[str]:
    current = catalog.visibility()
    return {i for i, _, m in store.iter_records() if current(i, m)}


def recover(settings: Settings, store: VectorStore) -> bool:
    """Finish the change this data dir's last writer committed and did not finish (killed); call under the
    ingest lock. A change killed before its commit needs nothing: the old versions are still current and
    its stored chunks are reused or deleted by the next change. True when there was one to finish."""
    catalog = Catalog(settings.catalog_path)
    if catalog.state(PUBLISH) is None:
        return False
    finish(settings, store, catalog, True)
    return True


def fingerprint(record: DocumentRecord) -> str:
    """What a document's stored copy must match (everything but when it was ingested)."""
    fields = {k: v for k, v in asdict(record).items() if k != "ingested_at"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def publish(
    settings: Settings,
    store: VectorStore,
    written: Iterable[DocumentRecord],
    removed: list[str],
    changed: bool,
) -> None:
    """After a change, under the ingest lock: the documents written and removed to the store's shelf (only
    those whose stored copy differs), then, when the index changed, a new version in the store, which this
    data dir is marked with. A data dir that was behind catches up first."""
    current = store_version(store)
    behind = current != local_version(settings)
    prints = {r.path: (r, fingerprint(r)) for r in written}
    stored = store.document_fingerprints(list(prints))
    fresh = {path: (r.to_json(), p) for path, (r, p) in prints.items() if stored.get(path) != p}
    store.put_documents(fresh)
    if removed:
        store.delete_documents(removed)
    if behind:  # another process changed the index since this data dir was made: all of it from the store
        _pull_catalog(settings, store)
    if changed or fresh or removed:
        version = f"{time.time_ns():x}-{secrets.token_hex(4)}"
        store.record_info(**{VERSION: version})
        _mark(settings, version)
    elif behind:
        _mark(settings, current)


class _Busy(Exception):
    """Another process holds the ingest lock."""


def _busy() -> None:
    raise _Busy


def drop_unused(settings: Settings, store: VectorStore) -> int:
    """Delete the stored chunks that no document's current version uses (a change killed before its
    commit stored them), unless a change is under way (never waits for one); how many were deleted."""
    try:
        with ingest_lock(settings, _busy):
            pull_if_behind(settings, store)
            current = Catalog(settings.catalog_path).visibility()
            unused = [i for i, _, m in store.iter_records() if not current(i, m)]
            if unused:
                store.delete(unused)
            return len(unused)
    except _Busy:
        return 0
