"""Answers from an LLM through LangChain: any chat model (`BaseChatModel`), and `generator.name = "openai"`
for an OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp, LM Studio, a hosted API) through `ChatOpenAI`.

The model gets `build_messages` and streams its reply; retries, timeouts and connection reuse are the
chat model's. A server that ignores `"stream": true` and sends one JSON body is asked once more without
streaming. Every failure becomes a `GeneratorError` with a one-line message, so the pipeline can fall back
to the extractive answer or report it. In code, pass any chat model:
`build_pipeline(settings, generator=ChatModelGenerator(model))`. Follow-up questions are condensed by the
same model (`LLMCondenser`), falling back to the rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from rag.condense import Condenser, RuleCondenser
from rag.generators.base import GenerationRequest, Generator, GeneratorError
from rag.generators.prompts import CONDENSE_PROMPT, HISTORY_TURNS, build_messages, history_messages, one_line
from rag.types import Query, Turn

if TYPE_CHECKING:
    import httpx
    from langchain_core.language_models import BaseChatModel

    from rag.settings import GeneratorSettings


def describe(exc: BaseException) -> str:
    """Any chat model's error in one line."""
    status = getattr(exc, "status_code", None)
    what = one_line(str(getattr(exc, "message", "") or exc), 120) or type(exc).__name__
    return f"HTTP {status}: {what}" if status else f"{type(exc).__name__}: {what}"


class ChatModelGenerator(Generator):
    def __init__(
        self, model: BaseChatModel, name: str = "", error: Callable[[BaseException], str] | None = None
    ) -> None:
        self.model = model
        self.name = name or type(model).__name__
        self.error = error or (lambda exc: f"the chat model {self.name} failed: {describe(exc)}")
        self.condenser = LLMCondenser(self)

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        yield from self._stream(build_messages(request))

    def complete(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> str:
        """One whole reply, not streamed (the condenser's call); `max_tokens` limits models that have the
        setting (ChatOpenAI's `max_tokens`), others keep their own."""
        model = self.model
        if max_tokens and "max_tokens" in type(model).model_fields:
            model = model.model_copy(update={"max_tokens": max_tokens})
        try:
            reply = model.invoke(messages)
        except Exception as exc:  # any provider's error: one line for the user, never a traceback
            raise GeneratorError(self.error(exc)) from None
        if not reply.text.strip():
            raise GeneratorError(self.error(EmptyAnswer()))
        return reply.text

    def _stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        got = False
        try:
            for chunk in self.model.stream(messages):
                piece = chunk.text if isinstance(chunk.text, str) else ""
                got = got or bool(piece.strip())
                if piece:
                    yield piece
        except Exception as exc:
            if got or not _unstreamed(exc):
                raise GeneratorError(self.error(exc)) from None
            yield self.complete(messages)  # the server sent one JSON body, which a stream cannot read
            return
        if not got:
            raise GeneratorError(self.error(EmptyAnswer()))


class EmptyAnswer(Exception):
    def __str__(self) -> str:
        return "returned an empty answer"


def _unstreamed(exc: Exception) -> bool:
    """LangChain's error for a stream that held no chunk at all (not a malformed one)."""
    return type(exc) is ValueError and "chunks" in str(exc)


def chat_openai(settings: GeneratorSettings, **options: Any) -> ChatModelGenerator:
    """A generator over `ChatOpenAI` for the endpoint in the generator settings. No API key is sent when
    none is set (not even one from the environment: a key is never sent to an endpoint it was not
    configured for)."""
    import httpx
    from langchain_openai import ChatOpenAI

    base_url = settings.base_url.rstrip("/")
    model = ChatOpenAI(
        base_url=base_url,
        model=settings.model,
        api_key=settings.api_key or _NO_KEY,
        temperature=settings.temperature,
        timeout=settings.timeout,
        max_retries=settings.retries,
        http_client=None if settings.api_key else httpx.Client(event_hooks={"request": [_drop_key]}),
        http_async_client=None
        if settings.api_key
        else httpx.AsyncClient(event_hooks={"request": [_adrop_key]}),
        **options,
    )

    def error(exc: BaseException) -> str:
        return f"the LLM endpoint at {base_url} {endpoint_failure(exc, settings.timeout)}"

    return ChatModelGenerator(model, name=f"at {base_url}", error=error)


_NO_KEY = "no-key"


def _drop_key(request: httpx.Request) -> None:
    if request.headers.get("Authorization") == f"Bearer {_NO_KEY}":
        del request.headers["Authorization"]


async def _adrop_key(request: httpx.Request) -> None:
    _drop_key(request)


def endpoint_failure(exc: BaseException, timeout: float) -> str:
    """What went wrong with an OpenAI-compatible endpoint, as the end of one sentence."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return f"did not answer within {timeout:g} s"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"could not be reached ({one_line(str(cause), 80) or 'connection failed'})"
    if isinstance(exc, openai.APIStatusError):
        return f"answered HTTP {exc.status_code}: {one_line(_error_text(exc.body) or exc.message, 120)}"
    if isinstance(exc, openai.APIError):  # an error object inside a stream
        return f"reported an error: {one_line(exc.message, 120)}"
    if isinstance(exc, json.JSONDecodeError):
        return f"sent a malformed stream chunk: {one_line(exc.doc, 60)!r}"
    if isinstance(exc, EmptyAnswer):
        return str(exc)
    if isinstance(exc, ValueError | TypeError):  # LangChain could not read the completion
        return f"sent an unexpected response: {one_line(str(exc), 100)}"
    return f"failed: {describe(exc)}"


def _error_text(body: object) -> str:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("message") or inner.get("detail") or json.dumps(inner))
        return str(inner)
    return str(body or "")


class Completer(Protocol):
    def complete(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> str: ...


class LLMCondenser(Condenser):
    """Asks the model for a standalone question; the rule-based condenser when that fails."""

    def __init__(self, generator: Completer, turns: int = HISTORY_TURNS) -> None:
        self.generator = generator
        self.turns = turns
        self.rules = RuleCondenser()

    def condense(self, question: str, history: Sequence[Turn]) -> Query:
        if not history:
            return Query(question)
        conversation = "\n".join(
            f"{m['role'].capitalize()}: {one_line(m['content'], 600)}"
            for m in history_messages(history, self.turns)
        )
        messages = [
            {"role": "system", "content": CONDENSE_PROMPT},
            {"role": "user", "content": f"Conversation:\n{conversation}\n\nFollow-up question: {question}"},
        ]
        try:
            reply = self.generator.complete(messages, max_tokens=200)
        except GeneratorError:
            return self.rules.condense(question, history)
        lines = [line for line in reply.strip().splitlines() if line.strip()]
        first = lines[0] if lines else ""
        first = re.sub(r"^(standalone question|question)\s*:\s*", "", first.strip(), flags=re.I).strip(
            " \"'“”"
        )
        if not first or len(first) > 4 * len(question) + 400:
            return self.rules.condense(question, history)
        return Query(first)
