"""The document-type plug-in interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from rag.types import Passage, Query, Structured


class DocumentType(ABC):
    def filters(self, query: Query) -> dict[str, Any] | None:
        """Metadata filters the question implies (a commenter it names), or None."""
        return None

    @abstractmethod
    def answer(self, query: Query, passages: list[Passage]) -> Structured | None:
        """An answer from the structure of the documents of this type, or None when the question is not
        about their structure."""
