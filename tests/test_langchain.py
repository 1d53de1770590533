"""LangChain in and out, through the real pipeline (real corpus, model, retrieval and verification) and
LangChain's real `ChatOpenAI` speaking HTTP to a fake OpenAI-compatible server on loopback. The README's
snippets are run as written, with the server's address put in."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.indexer import ingest
from rag.chains import AnswerChain, PassageRetriever
from rag.generators.base import REFUSAL, GeneratorError
from rag.generators.chat import ChatModelGenerator, chat_openai
from rag.index.embeddings import Embedder
from rag.index.store import VectorStore
from rag.pipeline import Pipeline, build_pipeline
from rag.settings import GeneratorSettings, Settings

from .conftest import CORPUS, REPO
from .fakellm import FakeLLM, completion, error, passages_of, sse, words

FUNDING = "£500,000 of funding"
pytestmark = pytest.mark.usefixtures("fresh")


def marker_of(body: dict[str, Any], text: str) -> int:
    """The marker of the first passage holding `text` in the prompt the server received."""
    return min(n for n, passage in passages_of(body).items() if text in passage)


def answering(text: str, holding: str) -> Callable[[dict[str, Any]], Any]:
    """A streamed reply `text` whose `{n}` is the marker of the passage holding `holding`."""
    return lambda body: sse(*words(text.format(n=marker_of(body, holding))))


def snippet(name: str) -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split(f"<!-- langchain:{name} -->\n```python\n", 1)[1].split("\n```", 1)[0]
    assert "http://127.0.0.1:8080/v1" in block
    return block


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, fake: FakeLLM) -> Iterator[tuple[Path, Settings]]:
    """The default corpus ingested once; (its root, settings for an LLM at the fake server)."""
    root = tmp_path_factory.mktemp("langchain")
    shutil.copytree(CORPUS, root / "corpus")
    generator = {
        "name": "openai",
        "base_url": fake.url,
        "model": "fake",
        "timeout": 5,
        "fallback": False,
        "retries": 0,
    }
    settings = Settings(data_dir=root / "data", generator=generator)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        report = ingest([root / "corpus"], settings, embedder=Embedder(settings.embedding))
        assert not report.failed and report.chunks_total > 5
    yield root, settings


@pytest.fixture(scope="module")
def pipeline(indexed: tuple[Path, Settings]) -> Pipeline:
    _, settings = indexed
    return build_pipeline(settings, embedder=Embedder(settings.embedding), store=VectorStore(settings))


@pytest.fixture
def in_index(indexed: tuple[Path, Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a README snippet as a user would: from the corpus folder, its index in the data dir."""
    root, settings = indexed
    monkeypatch.chdir(root)
    monkeypatch.setenv("RAG_DATA_DIR", str(settings.data_dir))


def test_readme_retriever_in_an_lcel_chain(
    fake: FakeLLM, in_index: None, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.script.append(lambda body: completion("Imperial returned £500,000 in October 2021."))
    exec(snippet("retriever").replace("http://127.0.0.1:8080/v1", fake.url), {})
    assert capsys.readouterr().out.strip() == "Imperial returned £500,000 in October 2021."
    (request,) = fake.requests
    prompt = request["body"]["messages"][-1]["content"]
    assert FUNDING in prompt and prompt.endswith("Question: How much funding was returned?")


def test_readme_pipeline_with_chatopenai(
    fake: FakeLLM, in_index: None, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.script.extend(
        [
            answering("Imperial returned the £500,000 of funding [{n}].", FUNDING),
            lambda body: sse("When was the £500,000 of funding returned?"),  # the follow-up, condensed
            answering("It was returned in October 2021 [{n}].", "October 2021"),
        ]
    )
    exec(snippet("pipeline").replace("http://127.0.0.1:8080/v1", fake.url), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Imperial returned the £500,000 of funding. [1] ['")  # answer, then its quotes
    assert FUNDING in out[0].split("] ", 1)[1]
    assert out[-1].startswith("{'citations': [{") and "October 2021" in out[-1]
    assert all(line.startswith("{'answer': ") for line in out[1:-1])
    assert [r["body"]["stream"] for r in fake.requests] == [True, False, True]  # answer, condense, answer


def test_answer_chain_streams_what_it_invokes_and_batches(fake: FakeLLM, pipeline: Pipeline) -> None:
    chain = AnswerChain(pipeline)
    script = answering("Imperial returned the £500,000 of funding [{n}].", FUNDING)
    fake.script.extend([script, script])
    chunks = list(chain.stream("How much funding was returned?"))
    invoked = chain.invoke("How much funding was returned?")
    assert "".join(c.get("answer", "") for c in chunks) == invoked["answer"]
    assert chunks[-1]["citations"] == invoked["citations"] and invoked["refused"] is False
    assert FUNDING in invoked["citations"][0]["quote"]

    fake.script.extend([script, script])
    batch = chain.batch(["How much funding was returned?", {"question": "How much funding was returned?"}])
    assert [b["answer"] for b in batch] == [invoked["answer"]] * 2

    fake.script.append(script)
    assert asyncio.run(chain.ainvoke("How much funding was returned?")) == invoked


def test_retriever_documents_carry_citation_metadata(pipeline: Pipeline) -> None:
    docs = PassageRetriever(pipeline=pipeline, k=3).invoke("How much funding was returned?")
    assert len(docs) == 3 and any(FUNDING in d.page_content for d in docs)
    for doc in docs:
        assert doc.id == doc.metadata["chunk_id"]
        assert doc.metadata["source"].startswith("corpus/") and doc.metadata["kind"]
        assert isinstance(doc.metadata["score"], float)


def test_llm_generators_see_the_question_without_a_gate(
    fake: FakeLLM, indexed: tuple[Path, Settings]
) -> None:
    """By default (`answer.judge = auto`) the model decides what the passages answer; the evidence gate
    stays available as a setting."""
    _, settings = indexed
    question = "What is the boiling point of mercury?"
    fake.script.append(lambda body: sse(REFUSAL))
    answer = build_pipeline(settings).ask(question)
    assert answer.refused and len(fake.requests) == 1

    gated = settings.model_copy(update={"answer": settings.answer.model_copy(update={"judge": "evidence"})})
    assert build_pipeline(gated).ask(question).refused
    assert len(fake.requests) == 1  # refused before the model was asked


def test_a_failing_chat_model_is_one_line(fake: FakeLLM, indexed: tuple[Path, Settings]) -> None:
    from langchain_openai import ChatOpenAI

    _, settings = indexed
    model = ChatOpenAI(base_url=fake.url, api_key="none", model="local", max_retries=0)
    pipeline = build_pipeline(settings, generator=ChatModelGenerator(model))
    fake.script.append(error(500, "model overloaded"))
    with pytest.raises(GeneratorError, match=r"^the chat model ChatOpenAI failed: HTTP 500: .*overloaded"):
        pipeline.ask("How much funding was returned?")
    fake.script.append(lambda body: sse(" "))
    with pytest.raises(GeneratorError, match=r"returned an empty answer$"):
        pipeline.ask("How much funding was returned?")


def test_any_chat_model_is_a_generator(fake: FakeLLM, indexed: tuple[Path, Settings]) -> None:
    _, settings = indexed
    generator = chat_openai(GeneratorSettings(base_url=fake.url, model="other", timeout=5))
    assert isinstance(generator, ChatModelGenerator)
    fake.script.append(answering("Imperial returned the £500,000 of funding [{n}].", FUNDING))
    answer = build_pipeline(settings, generator=generator).ask("How much funding was returned?")
    assert not answer.refused and FUNDING in answer.citations[0].quote
    assert fake.requests[0]["body"]["model"] == "other"


def test_the_embedder_as_langchain_embeddings(pipeline: Pipeline) -> None:
    from langchain_core.embeddings import Embeddings

    from rag.chains import LangChainEmbeddings

    embeddings = LangChainEmbeddings(pipeline.embedder)
    assert isinstance(embeddings, Embeddings)
    texts = ["Imperial returned the funding.", "The partnership ended in 2021."]
    vectors = embeddings.embed_documents(texts)
    assert vectors == [list(map(float, row)) for row in pipeline.embedder.encode(texts)]
    assert embeddings.embed_query(texts[0]) == vectors[0] and len(vectors[0]) == pipeline.embedder.dimension
