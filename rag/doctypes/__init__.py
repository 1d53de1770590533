"""Document-type plug-ins: what a format knows about its own structure, so the core knows no format.

A plug-in may narrow retrieval to the part of the corpus a question names (`filters`), and may answer
questions about the documents' structure from their metadata (`answer`). Today: forum threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag.doctypes.base import DocumentType
from rag.doctypes.thread import ThreadType
from rag.types import Passage, Structured

if TYPE_CHECKING:
    from rag.index.lexical import LexicalIndex

__all__ = ["DocumentType", "Structured", "plugins"]


def plugins(index: LexicalIndex) -> list[DocumentType]:
    """The plug-ins for the document types present in the index (each takes only its own chunks)."""
    found: list[DocumentType] = []
    comments = [Passage(r.id, r.text, r.metadata) for r in index.of_kind("comment")]
    if comments:
        found.append(ThreadType(comments))
    return found
