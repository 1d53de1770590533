"""LangChain in and out: our retrieval as a `BaseRetriever`, verified, cited answers as a `Runnable`, and
the embedding model as `Embeddings`.

    retriever = PassageRetriever(pipeline=pipeline, k=5)   # Documents with citation metadata
    chain = AnswerChain(pipeline=pipeline)                  # invoke / stream / batch / ainvoke / astream
    embeddings = LangChainEmbeddings(pipeline.embedder)     # the index's vectors, for LangChain stores

Both drop into a user's LCEL chain or agent. A chat model comes in as a generator
(`rag.generators.chat.ChatModelGenerator`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import AddableDict
from pydantic import ConfigDict

from rag.types import Done, Passage, TextDelta

if TYPE_CHECKING:
    from rag.index.embeddings import Embedder
    from rag.pipeline import Pipeline


class LangChainEmbeddings(Embeddings):
    """An `Embedder` (the model and precision the index was written with) as LangChain's `Embeddings`."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text)


def to_document(passage: Passage) -> Document:
    """A passage as a LangChain Document: its text, and what a citation needs in its metadata."""
    metadata = {
        key: value
        for key, value in passage.metadata.items()
        if isinstance(value, str | int | float | bool) and key not in ("text", "index_text")
    }
    metadata |= {
        "chunk_id": passage.id,
        "source": passage.source,
        "title": passage.title,
        "section": passage.section,
        "kind": passage.kind,
        "score": passage.score,
    }
    return Document(id=passage.id, page_content=passage.text, metadata=metadata)


class PassageRetriever(BaseRetriever):
    """Our hybrid retrieval (BM25 and dense, fused) over the index, as a LangChain retriever."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    pipeline: Any  # rag.pipeline.Pipeline (Any: pydantic need not know it)
    k: int = 5

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        self.pipeline.ensure_ready()
        return [to_document(p) for p in self.pipeline.retriever.retrieve(query, self.k)]


def _question(value: str | dict[str, Any]) -> tuple[str, Sequence[Any]]:
    if isinstance(value, str):
        return value, ()
    if isinstance(value, dict) and isinstance(value.get("question"), str):
        return value["question"], value.get("history") or ()
    raise TypeError('the input is a question, or {"question": ..., "history": [...]}')


class AnswerChain(Runnable[str | dict[str, Any], dict[str, Any]]):
    """Question in (a string, or {"question", "history"}), verified answer out: {"answer", "citations",
    "refused"} with each citation as `Citation.to_json()`. Streaming yields {"answer": piece} chunks as
    the answer is verified, then {"citations": [...], "refused": ...}; added up they equal `invoke`'s."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def invoke(
        self, input: str | dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {"answer": "", "citations": [], "refused": False}
        for chunk in self.stream(input, config):
            answer = {**answer, **chunk, "answer": answer["answer"] + chunk.get("answer", "")}
        return answer

    def stream(
        self, input: str | dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        yield from self._transform_stream_with_config(iter([input]), self._answer, config)

    def _answer(self, inputs: Iterator[str | dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for value in inputs:
            question, history = _question(value)
            for event in self.pipeline.stream(question, history):
                if isinstance(event, TextDelta):
                    yield AddableDict(answer=event.text)
                elif isinstance(event, Done):  # the verified citations, once the answer is complete
                    citations = [c.to_json() for c in event.answer.citations]
                    yield AddableDict(citations=citations, refused=event.answer.refused)
