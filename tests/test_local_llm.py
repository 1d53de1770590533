"""The LLM path with a real model, on a handbook that is not the default corpus. Opt-in: runs when
RAG_TEST_LLM_URL points at an OpenAI-compatible server (`../shared/tools/local-llm start` prints it);
CI has no model, and the fault tests use a fake server instead."""

from __future__ import annotations

import os

import pytest

from ingest.indexer import ingest
from rag.pipeline import build_pipeline
from rag.settings import Settings

from .test_answerability import PAGES

URL = os.environ.get("RAG_TEST_LLM_URL", "")
pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(not URL, reason="set RAG_TEST_LLM_URL to run with a real LLM"),
]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("handbook")
    for name, text in PAGES.items():
        (root / name).write_text(text, encoding="utf-8")
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    ingest([root], settings)
    return settings


def llm(settings: Settings, name: str, **generator: object) -> Settings:
    model = os.environ.get("RAG_TEST_LLM_MODEL", "local")
    values = {"name": name, "base_url": URL, "model": model, "timeout": 180, "fallback": False, **generator}
    return settings.model_copy(update={"generator": settings.generator.model_copy(update=values)})


def test_a_real_model_answers_with_verified_citations(indexed: Settings) -> None:
    answer = build_pipeline(llm(indexed, "openai")).ask(
        "How many days of annual leave do full-time staff get?"
    )
    assert not answer.refused, answer.notes
    assert "25" in answer.text
    for citation in answer.citations:
        assert citation.passage.text[citation.start : citation.end] == citation.quote


def test_a_real_model_refuses_what_the_handbook_does_not_say(indexed: Settings) -> None:
    answer = build_pipeline(llm(indexed, "openai")).ask("What is the boiling point of mercury?")
    assert answer.refused or not answer.citations
