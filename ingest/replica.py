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

from ingest.catalog import Catalog, DocumentRecord, data_dir_lock
from rag.lexical import rebuild
from rag.settings import Settings
from rag.store import Metadata, VectorStore

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
        rebuild(settings.lexical_dir, store.iter_records(include_text=True))
        _pull_catalog(settings, store)
        _mark(settings, current)
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
