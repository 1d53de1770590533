"""Answer generators, chosen by name (`generator.name` in settings)."""

from __future__ import annotations

from rag.errors import UnknownBackend
from rag.evidence import EvidenceScorer
from rag.generators.base import Generator
from rag.generators.extractive import ExtractiveGenerator
from rag.settings import Settings

GENERATORS = ("extractive", "openai")


class UnknownGenerator(UnknownBackend):
    """A generator name that is not registered."""


def make_generator(settings: Settings, scorer: EvidenceScorer) -> Generator:
    g = settings.generator
    if g.name == "extractive":
        return ExtractiveGenerator(scorer, settings.answer, g.max_sentences)
    if g.name == "openai":
        from rag.generators.chat import chat_openai

        return chat_openai(g)
    raise UnknownGenerator(f"unknown generator {g.name!r}; known: {', '.join(GENERATORS)}")
