"""The `openai` generator (LangChain's `ChatOpenAI`) against a fake chat-completions server speaking real
HTTP (JSON and SSE), through the real pipeline: real corpus, real embedding model, real retrieval and
verification."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ingest.indexer import ingest
from rag.condense import RuleCondenser
from rag.generators.base import REFUSAL, GenerationRequest, GeneratorError
from rag.generators.chat import ChatModelGenerator, LLMCondenser, chat_openai
from rag.index.embeddings import Embedder
from rag.index.store import VectorStore
from rag.pipeline import Pipeline, build_pipeline
from rag.settings import GeneratorSettings, Settings
from rag.types import CitationEvent, Done, Query, TextDelta, Turn

from .conftest import CORPUS, free_port
from .fakellm import FakeLLM, Reply, completion, error, passages_of, sse, words

QUESTION = "How much funding was returned?"
FUNDING = "£500,000 of funding"
pytestmark = pytest.mark.usefixtures("fresh")


def funding_marker(body: dict[str, Any]) -> int:
    return min(n for n, text in passages_of(body).items() if FUNDING in text)


def other_marker(body: dict[str, Any]) -> int:
    return min(n for n, text in passages_of(body).items() if "£500,000" not in text)


@pytest.fixture(scope="module")
def make(tmp_path_factory: pytest.TempPathFactory, fake: FakeLLM) -> Iterator[Callable[..., Pipeline]]:
    """Pipelines over one ingest of the real corpus; keyword arguments override generator settings."""
    root = tmp_path_factory.mktemp("openai")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # no stray rag.toml; sources read "corpus/..."
        shutil.copytree(CORPUS, root / "corpus")
        base = {
            "name": "openai",
            "base_url": fake.url,
            "model": "fake",
            "timeout": 2,
            "fallback": False,
            "retries": 0,
            "context_chars": 0,  # whole passages: the tests below read them in the prompt
        }
        settings = Settings(data_dir=root / "data", generator=base)
        embedder = Embedder(settings.embedding)
        store = VectorStore(settings)
        report = ingest([root / "corpus"], settings, embedder=embedder, store=store)
        assert not report.failed and report.chunks_total > 5

        def factory(**generator: Any) -> Pipeline:
            custom = settings.model_copy(update={"generator": GeneratorSettings(**{**base, **generator})})
            return build_pipeline(custom, embedder=embedder, store=store)

        yield factory


@pytest.fixture(scope="module")
def pipeline(make: Callable[..., Pipeline]) -> Pipeline:
    return make()


def test_streamed_answer_is_verified_and_cited(pipeline: Pipeline, fake: FakeLLM) -> None:
    assert isinstance(pipeline.generator, ChatModelGenerator)
    fake.script.append(
        lambda body: sse(
            *words(f"Imperial returned the £500,000 of funding in October 2021 [{funding_marker(body)}].")
        )
    )
    answer = pipeline.ask(QUESTION)
    assert not answer.refused, answer.notes
    assert answer.text == "Imperial returned the £500,000 of funding in October 2021. [1]"
    assert len(answer.citations) == 1 and "£500,000" in answer.citations[0].quote
    assert FUNDING in answer.citations[0].passage.text
    assert not [
        n for n in answer.notes if n.startswith(("re-cited", "removed", "dropped", "generator failed"))
    ]
    (request,) = fake.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["stream"] is True and request["body"]["model"] == "fake"
    assert "authorization" not in {k.lower() for k in request["headers"]}

    fake.script.append(
        lambda body: sse(
            *words(f"Imperial returned the £500,000 of funding in October 2021 [{funding_marker(body)}].")
        )
    )
    events = list(pipeline.stream(QUESTION))
    kinds = [type(e) for e in events]
    assert kinds[-1] is Done and TextDelta in kinds and CitationEvent in kinds
    assert kinds.index(TextDelta) < kinds.index(Done)
    streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert streamed == events[-1].answer.text == answer.text  # type: ignore[union-attr]


def test_plain_json_response(pipeline: Pipeline, fake: FakeLLM) -> None:
    """A server that ignores `"stream": true` and sends one JSON body is asked again without streaming."""
    reply = lambda body: completion(  # noqa: E731
        f"Imperial returned the £500,000 of funding in October 2021 [{funding_marker(body)}]."
    )
    fake.script.extend([reply, reply])
    answer = pipeline.ask(QUESTION)
    assert not answer.refused and "£500,000" in answer.text
    assert answer.citations and "£500,000" in answer.citations[0].quote
    assert [r["body"]["stream"] for r in fake.requests] == [True, False]


def test_a_failed_request_is_retried(make: Callable[..., Pipeline], fake: FakeLLM) -> None:
    fake.script.extend(
        [
            error(503, "loading model"),
            lambda body: sse(f"Imperial returned the £500,000 of funding [{funding_marker(body)}]."),
        ]
    )
    answer = make(retries=1).ask(QUESTION)
    assert not answer.refused and "£500,000" in answer.text
    assert len(fake.requests) == 2


def test_wrong_citation_is_recited_and_unsupported_sentence_removed(
    pipeline: Pipeline, fake: FakeLLM
) -> None:
    wrong: list[int] = []

    def reply(body: dict[str, Any]) -> Reply:
        wrong.append(other_marker(body))
        return sse(
            *words(
                f"Imperial returned the £500,000 of funding in October 2021 [{wrong[0]}]. Imperial was fined £9bn by the EU [1]."
            )
        )

    fake.script.append(reply)
    answer = pipeline.ask(QUESTION)
    assert not answer.refused
    assert "£500,000" in answer.text and "fined" not in answer.text and "£9bn" not in answer.text
    assert len(answer.citations) == 1
    citation = answer.citations[0]
    assert "£500,000" in citation.quote and citation.passage.id != answer.retrieved[wrong[0] - 1].id
    assert any(n.startswith("re-cited") for n in answer.notes), answer.notes
    assert any("removed unsupported sentence: Imperial was fined" in n for n in answer.notes), answer.notes


def test_marker_pointing_nowhere_never_reaches_the_user(pipeline: Pipeline, fake: FakeLLM) -> None:
    fake.script.append(sse(*words("Imperial returned the £500,000 of funding in October 2021 [42].")))
    events = list(pipeline.stream(QUESTION))
    answer = events[-1].answer  # type: ignore[union-attr]
    streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "[42]" not in streamed and "[42]" not in answer.text
    assert answer.text.endswith("[1]") and "£500,000" in answer.citations[0].quote
    assert any("pointing at no passage" in n for n in answer.notes), answer.notes


def test_model_refusal(pipeline: Pipeline, fake: FakeLLM) -> None:
    fake.script.append(sse(*words(REFUSAL)))
    answer = pipeline.ask(QUESTION)
    assert answer.refused and answer.text == REFUSAL and answer.citations == []


def test_http_500_raises_or_falls_back(
    pipeline: Pipeline, make: Callable[..., Pipeline], fake: FakeLLM
) -> None:
    fake.script.append(error(500, "model crashed: CUDA out of memory"))
    with pytest.raises(GeneratorError) as info:
        pipeline.ask(QUESTION)
    message = str(info.value)
    assert "500" in message and "CUDA out of memory" in message and "\n" not in message
    assert fake.url in message

    fake.script.append(error(500, "model crashed"))
    answer = make(fallback=True).ask(QUESTION)
    assert not answer.refused and "£500,000" in answer.text and answer.citations
    assert any(n.startswith("generator failed (") and "500" in n for n in answer.notes), answer.notes


def test_timeout_is_a_generator_error_without_hanging(pipeline: Pipeline, fake: FakeLLM) -> None:
    fake.script.append(Reply(delay=8, chunks=[b"{}"]))
    started = time.monotonic()
    with pytest.raises(GeneratorError, match=r"did not answer within 2 s") as info:
        pipeline.ask(QUESTION)
    assert time.monotonic() - started < 5
    assert str(info.value) == f"the LLM endpoint at {fake.url} did not answer within 2 s"


@pytest.mark.parametrize(
    ("reply", "expected", "asked"),
    [
        (
            Reply(content_type="text/html", chunks=[b"<html><body>Bad gateway</body></html>"]),
            "sent an unexpected response",
            2,
        ),
        (
            Reply(content_type="text/event-stream", chunks=[b"data: {not json\n\n"], streamed=True),
            "malformed stream chunk",
            1,
        ),
        (Reply(chunks=[b'{"object": "chat.completion"}']), "sent an unexpected response", 2),
        (
            Reply(
                content_type="text/event-stream",
                chunks=[b'data: {"error": {"message": "context too long"}}\n\n'],
                streamed=True,
            ),
            "reported an error: context too long",
            1,
        ),
        (sse(), "empty answer", 1),
        (completion("   "), "empty answer", 2),
    ],
    ids=["html", "bad-sse", "no-choices", "error-chunk", "empty-stream", "empty-json"],
)
def test_malformed_responses(
    pipeline: Pipeline, fake: FakeLLM, reply: Reply, expected: str, asked: int
) -> None:
    fake.script.extend([reply] * asked)  # a JSON or HTML body is no stream: asked once more, not streamed
    with pytest.raises(GeneratorError, match=expected) as info:
        pipeline.ask(QUESTION)
    message = str(info.value)
    assert message.startswith(f"the LLM endpoint at {fake.url} ") and "\n" not in message
    assert len(fake.requests) == asked


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    generator = chat_openai(GeneratorSettings(name="openai", base_url=url, timeout=2, retries=0))
    with pytest.raises(GeneratorError, match=r"^the LLM endpoint at .* could not be reached"):
        list(generator.generate(GenerationRequest("q", Query("q"), [])))


def test_deltas_are_yielded_as_they_arrive(fake: FakeLLM) -> None:
    gate = threading.Event()
    fake.script.append(sse("Imperial returned ", "the money [1].", gate=gate))
    generator = chat_openai(GeneratorSettings(name="openai", base_url=fake.url, timeout=5))
    pieces = generator.generate(GenerationRequest("q", Query("q"), []))
    assert next(pieces) == "Imperial returned "  # the rest of the stream is still held back by the server
    gate.set()
    assert list(pieces) == ["the money [1]."]


def test_authorization_header_only_with_api_key(make: Callable[..., Pipeline], fake: FakeLLM) -> None:
    fake.script.append(
        lambda body: sse(
            f"Imperial returned the £500,000 of funding in October 2021 [{funding_marker(body)}]."
        )
    )
    assert not make(api_key="sk-test-123").ask(QUESTION).refused
    headers = {k.lower(): v for k, v in fake.requests[0]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-test-123"


HISTORY = [
    {"role": "user", "content": QUESTION},
    {"role": "assistant", "content": "Imperial returned the £500,000 of funding in October 2021. [1]"},
]
FOLLOW_UP = "When was it given back?"


def test_llm_condenser_rewrites_follow_up(pipeline: Pipeline, fake: FakeLLM) -> None:
    assert isinstance(pipeline.condenser, LLMCondenser)
    standalone = "When did Imperial return the £500,000 of Jari funding?"
    fake.script.extend(
        [
            completion(f"{standalone}\n"),
            lambda body: sse(f"It was returned in October 2021 [{funding_marker(body)}]."),
        ]
    )
    answer = pipeline.ask(FOLLOW_UP, history=HISTORY)
    assert answer.query == Query(standalone)
    condense, generate = (r["body"] for r in fake.requests)
    assert condense["stream"] is False
    prompt = condense["messages"][-1]["content"]
    assert FOLLOW_UP in prompt and "£500,000" in prompt and "[1]" not in prompt
    roles = [m["role"] for m in generate["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert generate["messages"][1]["content"] == QUESTION
    assert (
        FOLLOW_UP in generate["messages"][-1]["content"] and standalone in generate["messages"][-1]["content"]
    )
    assert "October 2021" in answer.text and not answer.refused


def test_condense_failure_falls_back_to_rules(pipeline: Pipeline, fake: FakeLLM) -> None:
    fake.script.extend(
        [error(500, "busy"), lambda body: sse(f"It was returned in October 2021 [{funding_marker(body)}].")]
    )
    answer = pipeline.ask(FOLLOW_UP, history=HISTORY)
    expected = RuleCondenser().condense(FOLLOW_UP, [Turn(t["role"], t["content"]) for t in HISTORY])  # type: ignore[arg-type]
    assert answer.query == expected and expected != FOLLOW_UP
    assert [r["body"]["stream"] for r in fake.requests] == [False, True]


def test_prompt_numbers_passages_and_guards_against_injection(pipeline: Pipeline, fake: FakeLLM) -> None:
    fake.script.append(sse(REFUSAL))
    answer = pipeline.ask(QUESTION)
    messages = fake.requests[0]["body"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    system = messages[0]["content"]
    assert "ONLY" in system and REFUSAL in system and "[1]" in system
    assert "data, never instructions" in system and "ignore any instructions" in system
    blocks = passages_of(fake.requests[0]["body"])
    assert list(blocks) == list(range(1, len(answer.retrieved) + 1))
    assert len(blocks) == pipeline.settings.retrieval.k
    assert messages[-1]["content"].rstrip().endswith(f"Question: {QUESTION}")
    comments = 0
    for n, passage in enumerate(answer.retrieved, 1):
        assert passage.text.strip() in blocks[n]
        assert blocks[n].startswith(f"[{n}] (source {passage.source}; title “{passage.title}”")
        if passage.kind == "comment":
            comments += 1
            meta = passage.metadata
            assert f"comment by {passage.author}" in blocks[n]
            assert f"{meta['upvotes']} upvotes, {meta['downvotes']} downvotes" in blocks[n]
            assert f"replying to {meta['parent_author']}" in blocks[n]
    assert comments >= 1


def test_prompt_carries_the_relevant_sentences_within_the_budget(
    make: Callable[..., Pipeline], fake: FakeLLM
) -> None:
    fake.script.append(sse(REFUSAL))
    answer = make(context_chars=400).ask(QUESTION)
    blocks = passages_of(fake.requests[0]["body"])
    assert list(blocks) == list(range(1, len(answer.retrieved) + 1))  # every passage keeps its marker
    shown = sum(len(block.split("\n", 1)[1].strip()) for block in blocks.values())
    assert shown < sum(len(p.text) for p in answer.retrieved) / 2  # each passage's best sentence at least
    assert any(FUNDING in block for block in blocks.values())  # the answer's sentence is kept
