"""The lexical (BM25) side of retrieval, built at ingest time and persisted beside the vector store.

The index also keeps every chunk's text, metadata and sentence spans, so that query time never re-splits
sentences. It is written to a temporary folder and renamed into place, so a killed ingest never leaves a
half-written index behind.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.text import sentence_spans, tokenize
from rag.types import context_line

TOKENIZER_VERSION = "5"  # part of the index stamp: a change of tokenization rebuilds the lexical index


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


def _postings_doc_freq(bm25: Any) -> dict[str, int] | None:
    """How many chunks hold each token, read off the BM25 index (its score matrix has one column of
    postings per token), or None when the index does not expose it. Re-tokenizing every chunk instead
    took 1.6 s of the 1.7 s it takes to load an index of 10,000 chunks."""
    import numpy as np

    scores, vocab = getattr(bm25, "scores", None), getattr(bm25, "vocab_dict", None)
    if not isinstance(scores, dict) or "indptr" not in scores or not vocab:
        return None
    counts = np.diff(scores["indptr"])
    return {token: int(counts[i]) for token, i in vocab.items() if token and counts[i]}


class LexicalIndex:
    """BM25 over every chunk, plus the chunk records themselves."""

    def __init__(self, records: list[Record], bm25: Any) -> None:
        import math

        self.records = records
        self.bm25 = bm25
        self.position = {r.id: i for i, r in enumerate(records)}
        doc_freq = _postings_doc_freq(bm25) if records else {}
        if doc_freq is None:
            doc_freq = {}
            for r in records:
                for token in set(tokenize(index_text(r.text, r.metadata))):
                    doc_freq[token] = doc_freq.get(token, 0) + 1
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

    @classmethod
    def build(cls, items: Iterable[tuple[str, str, dict[str, Any]]]) -> LexicalIndex:
        import bm25s

        records = [Record(cid, text, meta, sentence_spans(text)) for cid, text, meta in items]
        records.sort(
            key=lambda r: (str(r.metadata.get("path", "")), int(r.metadata.get("position", 0)), r.id)
        )
        bm25 = bm25s.BM25()
        if records:
            bm25.index(
                [tokenize(index_text(r.text, r.metadata)) or [""] for r in records], show_progress=False
            )
        return cls(records, bm25)

    def save(self, folder: Path) -> None:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self.records:
            self.bm25.save(str(tmp / "bm25"), show_progress=False)
        with open(tmp / "records.jsonl", "w", encoding="utf-8") as out:
            for r in self.records:
                out.write(json.dumps([r.id, r.text, r.metadata, r.sentences], ensure_ascii=False) + "\n")
        (tmp / "stamp").write_text(stamp(r.id for r in self.records))
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
        import bm25s

        try:
            if (folder / "version").read_text().strip() != TOKENIZER_VERSION:
                return None
            with open(folder / "records.jsonl", encoding="utf-8") as lines:
                records = [Record(i, t, m, [tuple(s) for s in ss]) for i, t, m, ss in map(json.loads, lines)]
            bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False) if records else bm25s.BM25()
        except (OSError, ValueError, KeyError):
            return None
        return cls(records, bm25)

    def search(self, query: str, k: int, filters: dict[str, Any] | None = None) -> list[tuple[Record, float]]:
        """The `k` best records for `query` with a positive BM25 score, best first."""
        import numpy as np

        tokens = tokenize(query)
        if not self.records or not tokens:
            return []
        scores = self.bm25.get_scores(tokens)
        if filters:
            mask = np.fromiter((matches(r.metadata, filters) for r in self.records), bool, len(self.records))
            scores = np.where(mask, scores, 0.0)
        k = min(k, len(self.records))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.records[i], float(scores[i])) for i in top if scores[i] > 0]


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
