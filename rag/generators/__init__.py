"""Answer generators, chosen by name (`generator.name` in settings)."""

from __future__ import annotations

from rag.generators.base import Generator
from rag.settings import GeneratorSettings

GENERATORS = ("extractive", "openai")


class UnknownGenerator(ValueError):
    """A generator name that is not registered."""


def make_generator(settings: GeneratorSettings) -> Generator:
    if settings.name == "extractive":
        from rag.generators.extractive import ExtractiveGenerator

        return ExtractiveGenerator(settings.max_sentences)
    if settings.name == "openai":
        from rag.generators.openai import OpenAIGenerator

        return OpenAIGenerator(settings)
    raise UnknownGenerator(f"unknown generator {settings.name!r}; known: {', '.join(GENERATORS)}")
