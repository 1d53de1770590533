"""Answers from any LangChain chat model (`ChatOpenAI` for OpenAI-compatible endpoints such as llama.cpp,
vLLM, Ollama or a hosted API; `ChatOllama`; any `BaseChatModel`).

The model gets the same messages as the `openai` generator (`build_messages`) and streams its reply;
retries, timeouts and connection reuse are the chat model's. Every failure becomes a `GeneratorError`
with a one-line message, so the pipeline can fall back to the extractive answer or report it.
`generator.name = "langchain"` builds a `ChatOpenAI` from the generator settings; in code, pass any chat
model: `build_pipeline(settings, generator=ChatModelGenerator(model))`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rag.generators.base import GenerationRequest, Generator, GeneratorError
from rag.generators.openai import LLMCondenser, _one_line, build_messages

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from rag.settings import GeneratorSettings


class ChatModelGenerator(Generator):
    def __init__(self, model: BaseChatModel, name: str = "") -> None:
        self.model = model
        self.name = name or type(model).__name__
        self.condenser = LLMCondenser(self)

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        yield from self._stream(build_messages(request))

    def complete(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> str:
        """One whole reply (the condenser's call); `max_tokens` is left to the model's own settings."""
        return "".join(self._stream(messages))

    def _stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        got = False
        try:
            for chunk in self.model.stream(messages):
                piece = chunk.text if isinstance(chunk.text, str) else ""
                got = got or bool(piece.strip())
                if piece:
                    yield piece
        except Exception as exc:  # any provider's error: one line for the user, never a traceback
            raise GeneratorError(f"the chat model {self.name} failed: {_describe(exc)}") from None
        if not got:
            raise GeneratorError(f"the chat model {self.name} returned an empty answer")


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    what = _one_line(str(getattr(exc, "message", "") or exc), 120) or type(exc).__name__
    return f"HTTP {status}: {what}" if status else f"{type(exc).__name__}: {what}"


def chat_openai(settings: GeneratorSettings, **options: Any) -> ChatModelGenerator:
    """A generator over `ChatOpenAI` for the endpoint in the generator settings."""
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(
        base_url=settings.base_url,
        model=settings.model,
        api_key=settings.api_key or "none",  # local servers want no key
        temperature=settings.temperature,
        timeout=settings.timeout,
        max_retries=1,
        **options,
    )
    return ChatModelGenerator(model, name=f"at {settings.base_url.rstrip('/')}")
