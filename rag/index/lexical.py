"""The lexical (BM25) side of retrieval, built at ingest time and persisted beside the vector store.

The index also keeps every chunk's text, metadata and sentence spans, so that query time never re-splits
sentences. They and BM25's score matrix are saved as flat files that a process memory-maps when it loads the
index: opening it reads the ids and the vocabulary, and a question reads only what it reaches. It is written to a temporary folder and renamed into place, so a killed ingest never leaves a
half-written index behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from rag.orders import is_order
from rag.text import sentence_spans, tokenize
from rag.types import context_line

TOKENIZER_VERSION = "6"  # part of the index stamp: a change of tokenization or format rebuilds the index


def index_text(text: str, metadata: dict[str, Any]) -> str:
    """What BM25 and the embedding model see for a chunk: where it sits (page title and section, or the
    author line of a thread comment), then its text."""
    where = context_line(metadata)
    return f"{where}\n\n{text}" if where else text


@dataclass(frozen=True)
class Record:
    id: str
    text: str
    metadata: dict[str, Any]
    sentences: list[tuple[int, int]]  # spans inside `text`


def matches(metadata: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    """True when every filter key equals the metadata value (a list value means: any of these)."""
    for key, wanted in (filters or {}).items():
        value = metadata.get(key)
        if isinstance(wanted, list | tuple | set):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


class Postings:
    """BM25's precomputed score matrix in compressed sparse columns (one column of postings per token: the
    chunks that hold it and the token's BM25 score in each), as bm25s builds it, and its vocabulary. A
    query's scores are the sums of its tokens' columns, so searching needs neither bm25s nor the matrix in
    memory: the saved arrays are memory-mapped and only the columns of a question's words are read."""

    FILES = ("postings_data.npy", "postings_indices.npy", "postings_indptr.npy")

    def __init__(self, data: Any, indices: Any, indptr: Any, vocab: dict[str, int], size: int) -> None:
        self.data, self.indices, self.indptr, self.vocab, self.size = data, indices, indptr, vocab, size

    @classmethod
    def build(cls, token_lists: list[list[str]]) -> Postings:
        import bm25s
        import numpy as np

        if not token_lists:
            empty = np.zeros(0, np.float32)
            return cls(empty, np.zeros(0, np.int32), np.zeros(1, np.int64), {}, 0)
        bm25 = bm25s.BM25()
        bm25.index(token_lists, show_progress=False)
        m = bm25.scores
        return cls(m["data"], m["indices"], m["indptr"], dict(bm25.vocab_dict), len(token_lists))

    def save(self, folder: Path) -> None:
        import numpy as np

        for name, array in zip(self.FILES, (self.data, self.indices, self.indptr), strict=True):
            np.save(folder / name, array)
        (folder / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, size: int) -> Postings:
        import numpy as np

        data, indices, indptr = (np.load(folder / name, mmap_mode="r") for name in cls.FILES)
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        columns = len(indptr) - 1  # bm25s gives the empty token an id but no column
        if not 0 <= columns <= len(vocab) or len(data) != len(indices) or int(indptr[-1]) != len(data):
            raise ValueError("inconsistent postings")
        return cls(data, indices, indptr, vocab, size)

    def doc_freq(self) -> dict[str, int]:
        """How many chunks hold each token (the length of its column)."""
        import numpy as np

        counts = np.diff(np.asarray(self.indptr))
        return {t: int(counts[i]) for t, i in self.vocab.items() if t and i < len(counts) and counts[i]}

    def scores(self, tokens: list[str]) -> Any:
        """Every chunk's BM25 score for the tokens (a repeated token counts again, as in bm25s)."""
        import numpy as np

        last = len(self.indptr) - 1
        columns = [c for t in tokens if (c := self.vocab.get(t, last)) < last]
        if not columns:
            return np.zeros(self.size)
        spans = [(int(self.indptr[c]), int(self.indptr[c + 1])) for c in columns]
        rows = np.concatenate([self.indices[a:b] for a, b in spans])
        weights = np.concatenate([self.data[a:b] for a, b in spans]).astype(np.float64)
        return np.bincount(rows, weights=weights, minlength=self.size)


class StoredRecords(Sequence[Record]):
    """The chunk records of a saved index, read on demand: texts, metadata and sentence spans stay in
    memory-mapped files (at 100,000 chunks, holding them as Python objects cost more memory than the rest
    of the process), and only the chunks a question reaches are decoded."""

    def __init__(self, folder: Path) -> None:
        import numpy as np

        self.ids: list[str] = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
        n = len(self.ids)
        self._texts, self._metadata = _mapped(folder / "texts.bin"), _mapped(folder / "metadata.bin")
        self._offsets = np.load(folder / "offsets.npy", mmap_mode="r")  # (n + 1, 3): text, metadata, sentence
        self._spans = np.load(folder / "sentences.npy", mmap_mode="r")  # (m, 2)
        if self._offsets.shape != (n + 1, 3) or int(self._offsets[-1, 2]) != len(self._spans):
            raise ValueError("inconsistent records")
        if int(self._offsets[-1, 0]) != len(self._texts) or int(self._offsets[-1, 1]) != len(self._metadata):
            raise ValueError("inconsistent records")

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> list[Record]: ...
    def __getitem__(self, i: int | slice) -> Record | list[Record]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        (t0, m0, s0), (t1, m1, s1) = self._offsets[i].tolist(), self._offsets[i + 1].tolist()
        return Record(
            self.ids[i],
            bytes(self._texts[t0:t1]).decode("utf-8"),
            json.loads(bytes(self._metadata[m0:m1])),
            [(a, b) for a, b in self._spans[s0:s1].tolist()],
        )

    @staticmethod
    def save(records: Sequence[Record], folder: Path) -> None:
        import numpy as np

        offsets = np.zeros((len(records) + 1, 3), np.int64)
        spans: list[tuple[int, int]] = []
        with open(folder / "texts.bin", "wb") as texts, open(folder / "metadata.bin", "wb") as metadata:
            for i, r in enumerate(records):
                texts.write(r.text.encode("utf-8"))
                metadata.write(json.dumps(r.metadata, ensure_ascii=False).encode("utf-8"))
                spans.extend(r.sentences)
                offsets[i + 1] = (texts.tell(), metadata.tell(), len(spans))
        np.save(folder / "offsets.npy", offsets)
        np.save(folder / "sentences.npy", np.array(spans, np.int32).reshape(-1, 2))
        (folder / "ids.json").write_text(json.dumps([r.id for r in records]), encoding="utf-8")


def _mapped(path: Path) -> Any:
    """The file's bytes, memory-mapped (an empty file as empty bytes: mmap refuses length 0)."""
    import mmap

    with open(path, "rb") as handle:
        if not os.fstat(handle.fileno()).st_size:
            return b""
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


class LexicalIndex:
    """BM25 over every chunk, plus the chunk records themselves."""

    def __init__(
        self, records: Sequence[Record], postings: Postings, kinds: dict[str, list[int]], orders: list[int]
    ) -> None:
        import math

        self.records = records
        self.postings = postings
        self.kinds = kinds  # positions of the chunks of each metadata `kind`
        self.orders = orders  # positions of the chunks that hold an order to the assistant (`rag.orders`)
        self._columns: dict[str, list[Any] | None] = {}  # metadata values by key, parsed on first filter
        # a loaded index's saved columns: key -> JSON (None: a key with non-scalar values); None when built
        self._raw_columns: dict[str, bytes | None] | None = None
        ids = records.ids if isinstance(records, StoredRecords) else [r.id for r in records]
        self.position = {cid: i for i, cid in enumerate(ids)}
        doc_freq = postings.doc_freq()
        n = max(len(records), 1)
        # BM25's idf, floored so that a word in every chunk still counts a little.
        self.idf = {t: max(math.log(1 + (n - df + 0.5) / (df + 0.5)), 0.05) for t, df in doc_freq.items()}
        # a word the corpus never uses weighs as much as its rarest word (not more: in a small corpus the
        # formula's value for df = 0 would let one unknown verb outweigh every other word of a question)
        self.unseen_idf = max(self.idf.values(), default=math.log(1 + (n + 0.5) / 0.5))

    def term_weight(self, token: str) -> float:
        """Inverse document frequency of a (stemmed) token; a token absent from the corpus weighs most."""
        return self.idf.get(token, self.unseen_idf)

    def sentences(self, chunk_id: str, text: str) -> list[tuple[int, int]]:
        """Sentence spans of a chunk, from the index when it is there."""
        at = self.position.get(chunk_id)
        return self.records[at].sentences if at is not None else sentence_spans(text)

    def of_kind(self, kind: str) -> list[Record]:
        """The chunks whose metadata `kind` is `kind` (e.g. a thread's comments)."""
        return [self.records[i] for i in self.kinds.get(kind, [])]

    def holding_orders(self) -> list[Record]:
        """The chunks with a sentence that gives the assistant orders (found at build time, so that a
        question about them does not scan the corpus)."""
        return [self.records[i] for i in self.orders]

    @classmethod
    def build(cls, items: Iterable[tuple[str, str, dict[str, Any]]]) -> LexicalIndex:
        records = [Record(cid, text, meta, sentence_spans(text)) for cid, text, meta in items]
        records.sort(
            key=lambda r: (str(r.metadata.get("path", "")), int(r.metadata.get("position", 0)), r.id)
        )
        postings = Postings.build([tokenize(index_text(r.text, r.metadata)) or [""] for r in records])
        kinds: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            kinds.setdefault(str(r.metadata.get("kind", "")), []).append(i)
        orders = [i for i, r in enumerate(records) if any(is_order(r.text[a:b]) for a, b in r.sentences)]
        return cls(records, postings, kinds, orders)

    def save(self, folder: Path) -> None:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.postings.save(tmp)
        StoredRecords.save(self.records, tmp)
        (tmp / "kinds.json").write_text(json.dumps(self.kinds), encoding="utf-8")
        (tmp / "orders.json").write_text(json.dumps(self.orders), encoding="utf-8")
        names: dict[str, str | None] = {}  # each metadata key's column file (None: not all values scalar)
        for i, key in enumerate(sorted({key for r in self.records for key in r.metadata})):
            column = [r.metadata.get(key) for r in self.records]
            scalar = all(v is None or isinstance(v, str | int | float | bool) for v in column)
            names[key] = f"column-{i}.json" if scalar else None  # what a filter reads, not the metadata
            if scalar:
                (tmp / f"column-{i}.json").write_text(
                    json.dumps(column, ensure_ascii=False), encoding="utf-8"
                )
        (tmp / "columns.json").write_text(json.dumps(names, ensure_ascii=False), encoding="utf-8")
        (tmp / "stamp").write_text(stamp(self.position))
        (tmp / "version").write_text(TOKENIZER_VERSION)
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex | None:
        """The saved index, or None when there is none (or it is unreadable)."""
        try:
            if (folder / "version").read_text().strip() != TOKENIZER_VERSION:
                return None
            records = StoredRecords(folder)
            postings = Postings.load(folder, len(records))
            kinds = json.loads((folder / "kinds.json").read_text(encoding="utf-8"))
            orders = json.loads((folder / "orders.json").read_text(encoding="utf-8"))
            columns = json.loads((folder / "columns.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError):
            return None
        index = cls(records, postings, kinds, orders)
        index._raw_columns = {}
        for key, name in columns.items():  # read now (a later save may replace the folder), parsed lazily
            index._raw_columns[key] = (folder / name).read_bytes() if name else None
        return index

    def column(self, key: str) -> list[Any]:
        """Every chunk's metadata value for `key` (None where it has none), in index order."""
        if key not in self._columns:
            saved = self._raw_columns
            if saved is not None and key not in saved:
                self._columns[key] = [None] * len(self.records)  # no chunk has it
            elif saved is not None and saved[key] is not None:
                self._columns[key] = json.loads(saved.pop(key) or b"[]")
            else:  # a built index, or non-scalar values: from the metadata itself
                self._columns[key] = [r.metadata.get(key) for r in self.records]
        return self._columns[key] or []

    def allowed(self, filters: dict[str, Any]) -> Any:
        """A boolean mask of the chunks whose metadata match `filters` (see `matches`)."""
        import numpy as np

        mask = np.ones(len(self.records), bool)
        for key, wanted in filters.items():
            if isinstance(wanted, list | tuple | set):
                mask &= np.fromiter((v in wanted for v in self.column(key)), bool, len(self.records))
            else:
                mask &= np.fromiter((v == wanted for v in self.column(key)), bool, len(self.records))
        return mask

    def search(self, query: str, k: int, filters: dict[str, Any] | None = None) -> list[tuple[Record, float]]:
        """The `k` best records for `query` with a positive BM25 score, best first (ties: index order)."""
        import numpy as np

        tokens = tokenize(query)
        if not self.records or not tokens or k < 1:
            return []
        scores = self.postings.scores(tokens)
        if filters:
            scores = np.where(self.allowed(filters), scores, 0.0)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:  # the k best, and every chunk tied with the k-th: ties go to the earlier chunk
            kth = np.partition(scores[hits], len(hits) - k)[len(hits) - k]
            hits = hits[scores[hits] >= kth]
        hits = hits[np.lexsort((hits, -scores[hits]))][:k]
        return [(self.records[int(i)], float(scores[i])) for i in hits]


def stamp(ids: Iterable[str]) -> str:
    """A fingerprint of a set of chunk ids, to tell whether the lexical index matches the store."""
    import hashlib

    return hashlib.sha256("\n".join([TOKENIZER_VERSION, *sorted(ids)]).encode()).hexdigest()


def read_stamp(folder: Path) -> str | None:
    try:
        return (folder / "stamp").read_text().strip()
    except OSError:
        return None


def rebuild(folder: Path, items: Iterable[tuple[str, str | None, dict[str, Any]]]) -> LexicalIndex:
    """Build the index from store records and save it."""
    index = LexicalIndex.build((cid, text or "", meta) for cid, text, meta in items)
    index.save(folder)
    return index
