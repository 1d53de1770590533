"""The document-type plug-in interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from rag.types import Passage, Structured


class DocumentType(ABC):
    def filters(self, question: str) -> dict[str, Any] | None:
        """Metadata filters the question implies (a commenter it names), or None."""
        return None

    @abstractmethod
    def answer(self, question: str, passages: list[Passage]) -> Structured | None:
        """An answer from the structure of the documents of this type, or None when the question is not
        about their structure. `question` is the standalone query (a follow-up's context terms in
        brackets after it)."""
