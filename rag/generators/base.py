"""The answer generator interface: the question, the passages and the history in; answer text with `[n]`
markers out, streamed in pieces."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.errors import EXIT_UNUSABLE, GENERATOR_FAILED, RagError
from rag.types import Passage, Turn

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
    query: str  # the standalone retrieval query
    passages: list[Passage]  # marker [n] refers to passages[n - 1]
    history: Sequence[Turn] = ()
    excerpts: Sequence[str] = ()  # what an LLM is shown of each passage (its relevant sentences), if set


class Generator(ABC):
    @abstractmethod
    def generate(self, request: GenerationRequest) -> Iterator[str]:
        """Pieces of the answer text, each claim followed by `[n]` markers; `REFUSAL` when the passages
        do not hold the answer. Raises `GeneratorError`."""
