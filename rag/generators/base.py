"""The answer generator interface: passages in, answer text with `[n]` markers out, streamed in pieces."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from rag.evidence import Evidence
from rag.types import Passage, Turn

REFUSAL = "The documents don't contain the answer to this question."


class GeneratorError(RuntimeError):
    """The generator failed (endpoint down, timeout, bad response); the message is for the user."""


@dataclass(frozen=True)
class GenerationRequest:
    question: str
    query: str  # the standalone retrieval query
    passages: list[Passage]  # marker [n] refers to passages[n - 1]
    evidence: list[Evidence] = field(default_factory=list)  # scored sentences, best first
    lead: int = 1  # the first `lead` evidence sentences each answer a part of the question
    history: Sequence[Turn] = ()
    listings: list[tuple[str, list[int]]] = field(
        default_factory=list
    )  # thread-structure answers: kind, passages


class Generator(ABC):
    @abstractmethod
    def generate(self, request: GenerationRequest) -> Iterator[str]:
        """Pieces of the answer text, each claim followed by `[n]` markers; `REFUSAL` when the passages
        do not hold the answer. Raises `GeneratorError`."""
