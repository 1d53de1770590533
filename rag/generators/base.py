"""The answer generator interface: the question, the passages and the history in; answer text with `[n]`
markers out, streamed in pieces."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rag.condense import Condenser
from rag.errors import EXIT_UNUSABLE, GENERATOR_FAILED, RagError
from rag.types import Passage, Query, Turn

REFUSAL = "The documents don't contain the answer to this question."


class GeneratorError(RagError):
    """The generator failed (endpoint down, timeout, bad response); the message is for the user of the
    CLI and the chat page; an API caller is told that the language model did not answer."""

    exit_code = EXIT_UNUSABLE
    status = 502
    code = "generator_failed"
    public = GENERATOR_FAILED


@dataclass(frozen=True)
class GenerationRequest:
    question: str  # the user's question (orders removed)
    query: Query  # the question as retrieval read it
    passages: list[Passage]  # marker [n] refers to passages[n - 1]
    history: Sequence[Turn] = ()
    excerpts: Sequence[str] = ()  # what an LLM is shown of each passage (its relevant sentences), if set


class Generator(ABC):
    # shown each passage's sentences most relevant to the question, within generator.context_chars (an LLM),
    # rather than whole passages
    shown_excerpts: ClassVar[bool] = True
    condenser: Condenser | None = None  # condenses follow-ups itself (an LLM); None: the pipeline's rules

    @abstractmethod
    def generate(self, request: GenerationRequest) -> Iterator[str]:
        """Pieces of the answer text, each claim followed by `[n]` markers; `REFUSAL` when the passages
        do not hold the answer. Raises `GeneratorError`."""
