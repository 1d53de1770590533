"""Retrieval: dense (Chroma), lexical (BM25) and their reciprocal rank fusion, then an optional reranker.

Every retriever and reranker has one job and one abstract method, and is chosen by name from a registry
that fails loudly on unknown names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from rag.errors import UnknownBackend
from rag.index.embeddings import Embedder
from rag.index.lexical import LexicalIndex
from rag.index.store import VectorStore
from rag.types import Passage

Filters = dict[str, Any]


def chroma_where(filters: Filters | None) -> dict[str, Any] | None:
    """Chroma's `where` for equality filters (a list value means any of them)."""
    clauses = [
        {key: {"$in": list(value)} if isinstance(value, list | tuple | set) else {"$eq": value}}
        for key, value in (filters or {}).items()
    ]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class Retriever(ABC):
    @abstractmethod
    def retrieve(self, query: str, k: int, filters: Filters | None = None) -> list[Passage]:
        """The `k` passages most relevant to `query`, best first."""


_MAX_PASSED = 200  # at most this many more nearest chunks asked for, to pass over those not current


class DenseRetriever(Retriever):
    """Nearest chunks in the vector store. With a lexical index (which holds the text and metadata of
    every chunk of the documents' current versions) the store is asked for ids and distances only, and
    chunks the index does not hold are passed over: a change being stored and not yet committed (the
    index is rebuilt when it is), or stored and never finished (`rag.index.catalog`)."""

    def __init__(self, embedder: Embedder, store: VectorStore, lexical: LexicalIndex | None = None) -> None:
        self.embedder = embedder
        self.store = store
        self.lexical = lexical

    def retrieve(self, query: str, k: int, filters: Filters | None = None) -> list[Passage]:
        vector = self.embedder.encode([query])[0]
        if self.lexical is None:
            hits = self.store.query(vector, k, chroma_where(filters))
            return [Passage(h.id, h.text, h.metadata, h.score) for h in hits]
        records, position = self.lexical.records, self.lexical.position
        passed_over = max(self.store.count() - len(records), 0)  # asked for too, to still find k
        nearest = self.store.nearest(vector, k + min(passed_over, _MAX_PASSED), chroma_where(filters))
        passages = [
            Passage(cid, records[position[cid]].text, records[position[cid]].metadata, score)
            for cid, score in nearest
            if cid in position
        ]
        return passages[:k]


class LexicalRetriever(Retriever):
    def __init__(self, index: LexicalIndex) -> None:
        self.index = index

    def retrieve(self, query: str, k: int, filters: Filters | None = None) -> list[Passage]:
        return [Passage(r.id, r.text, r.metadata, score) for r, score in self.index.search(query, k, filters)]


class HybridRetriever(Retriever):
    """Reciprocal rank fusion (Cormack et al., 2009): score = sum over lists of 1 / (rrf_k + rank)."""

    def __init__(self, retrievers: list[Retriever], candidates: int = 20, rrf_k: int = 60) -> None:
        self.retrievers = retrievers
        self.candidates = candidates
        self.rrf_k = rrf_k

    def retrieve(self, query: str, k: int, filters: Filters | None = None) -> list[Passage]:
        fused: dict[str, float] = {}
        passages: dict[str, Passage] = {}
        for retriever in self.retrievers:
            for rank, passage in enumerate(retriever.retrieve(query, max(k, self.candidates), filters), 1):
                fused[passage.id] = fused.get(passage.id, 0.0) + 1.0 / (self.rrf_k + rank)
                passages.setdefault(passage.id, passage)
        best = sorted(fused, key=lambda i: -fused[i])[:k]
        return [Passage(i, passages[i].text, passages[i].metadata, fused[i]) for i in best]


class Reranker(ABC):
    @abstractmethod
    def rerank(self, query: str, passages: list[Passage]) -> list[Passage]:
        """The passages reordered (and rescored) by relevance to `query`."""


class NoReranker(Reranker):
    def rerank(self, query: str, passages: list[Passage]) -> list[Passage]:
        return passages


class CrossEncoderReranker(Reranker):
    """A sentence-transformers cross-encoder from a local path (none can be downloaded here)."""

    def __init__(self, model_path: str) -> None:
        if not model_path:
            raise UnknownBackend(
                "reranker 'cross-encoder' needs retrieval.reranker_model: a local cross-encoder model path"
            )
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(model_path, device="cpu")

    def rerank(self, query: str, passages: list[Passage]) -> list[Passage]:
        if not passages:
            return passages
        scores = self.model.predict([(query, p.text) for p in passages])
        order = sorted(range(len(passages)), key=lambda i: -float(scores[i]))
        return [
            Passage(passages[i].id, passages[i].text, passages[i].metadata, float(scores[i])) for i in order
        ]


RETRIEVERS = ("dense", "bm25", "hybrid")
RERANKERS = ("none", "cross-encoder")


def make_retriever(
    name: str,
    embedder: Embedder,
    store: VectorStore,
    lexical: LexicalIndex,
    candidates: int = 20,
    rrf_k: int = 60,
) -> Retriever:
    if name == "dense":
        return DenseRetriever(embedder, store, lexical)
    if name == "bm25":
        return LexicalRetriever(lexical)
    if name == "hybrid":
        return HybridRetriever(
            [DenseRetriever(embedder, store, lexical), LexicalRetriever(lexical)], candidates, rrf_k
        )
    raise UnknownBackend(f"unknown retriever {name!r}; known: {', '.join(RETRIEVERS)}")


def make_reranker(name: str, model_path: str = "") -> Reranker:
    if name == "none":
        return NoReranker()
    if name == "cross-encoder":
        return CrossEncoderReranker(model_path)
    raise UnknownBackend(f"unknown reranker {name!r}; known: {', '.join(RERANKERS)}")
