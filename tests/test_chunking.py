from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.chunking import chunk_document, pack
from ingest.loaders import Document, load_document
from rag.text import paragraph_spans

from .conftest import CORPUS

ARTICLE = CORPUS / "imperial-jari-article.md"
THREAD = CORPUS / "imperial-jari-thread.txt"


def load(path: Path) -> Document:
    return load_document(path, path.name, 10**8)


def prose(text: str) -> Document:
    return Document(Path("/x/doc.txt"), "doc.txt", text, "Doc", "text")


words = st.text(alphabet=st.sampled_from(list("abcdefgh ")), min_size=1, max_size=12)
sentence = st.builds(
    lambda w, p: w.strip().capitalize() + p, words, st.sampled_from([".", "!", "?", "", "”"])
)
paragraph = st.lists(sentence, min_size=1, max_size=8).map(" ".join)
document = st.lists(paragraph, min_size=1, max_size=10).map(lambda ps: "\n\n".join(ps) + "\n")


@settings(max_examples=150, deadline=None)
@given(document, st.integers(100, 400), st.integers(0, 150))
def test_chunks_are_exact_slices_and_cover_the_text(text: str, size: int, overlap: int) -> None:
    doc = prose(text)
    chunks = chunk_document(doc, size, overlap)
    covered: set[int] = set()
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert len(chunk.text) <= size
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    assert len({c.id for c in chunks}) == len(chunks)


@given(st.text(max_size=600), st.integers(100, 300), st.integers(0, 100))
def test_chunking_arbitrary_text_maps_back(text: str, size: int, overlap: int) -> None:
    for chunk in chunk_document(prose(text), size, overlap):
        assert text[chunk.start : chunk.end] == chunk.text
        assert len(chunk.text) <= size


def test_overlap_is_sentence_aligned() -> None:
    text = "\n\n".join(f"Sentence number {i} is here." for i in range(12))
    spans = pack(text, 0, len(text), 120, 60)
    assert len(spans) > 2
    for (_s1, e1), (s2, _) in itertools.pairwise(spans):
        assert s2 < e1, "consecutive chunks share their boundary sentences"
        assert text[s2:e1].startswith("Sentence") and text[s2:e1].endswith("here.")
    assert pack(text, 0, len(text), 120, 0)[1][0] >= spans[0][1]


def test_article_chunks_carry_front_matter_and_spans() -> None:
    doc = load(ARTICLE)
    assert doc.title.startswith("Chinese state-owned military research institute")
    assert doc.meta["publisher"] == "The Guardian"
    assert "Jari" in doc.meta["topic"]
    chunks = chunk_document(doc, 900, 200)
    assert len(chunks) >= 5
    assert not any("---" in c.text for c in chunks), "front matter is not content"
    for c in chunks:
        assert c.metadata["kind"] == "page"
        assert c.metadata["meta_publisher"] == "The Guardian"
        assert doc.text[c.metadata["start"] : c.metadata["end"]] == c.text  # type: ignore[misc]
    assert any("£500,000 of funding" in c.text for c in chunks)


def test_thread_comments_are_never_merged() -> None:
    doc = load(THREAD)
    assert doc.thread is not None
    chunks = chunk_document(doc, 900, 200)
    comments = doc.thread.comments
    by_comment: dict[int, list[str]] = {}
    for c in chunks:
        assert c.metadata["kind"] == "comment"
        comment = comments[int(c.metadata["comment"])]
        assert comment.start <= c.start and c.end <= comment.end
        assert c.metadata["author"] == comment.author
        by_comment.setdefault(comment.index, []).append(c.text)
    assert sorted(by_comment) == [0, 1, 2, 3]
    assert [(c.metadata["author"], c.metadata["upvotes"], c.metadata["downvotes"]) for c in chunks][:2] == [
        ("TheGrandNagus@lemmy.world", 26, 2),
        ("cyd@lemmy.world", 3, 12),
    ]
    op = [c for c in chunks if c.metadata["is_op"]]
    assert op and {c.metadata["author"] for c in op} == {"0x815@feddit.de"}
    last = chunks[-1].metadata
    assert (last["parent"], last["parent_author"]) == (2, "0x815@feddit.de")


@pytest.mark.parametrize("size", [600, 900])
def test_editing_a_paragraph_changes_only_the_chunks_that_hold_it(size: int) -> None:
    doc = load(ARTICLE)
    before = chunk_document(doc, size, 200)
    for p_start, p_end in paragraph_spans(doc.text, doc.body_start):
        # Same-length edit, so that no boundary moves: only ids of chunks holding the paragraph change.
        cut = doc.text.index(" ", p_start) if " " in doc.text[p_start:p_end] else p_start
        edited = doc.text[:cut] + "~" + doc.text[cut + 1 :]
        after = chunk_document(
            Document(doc.path, doc.source, edited, doc.title, doc.loader, doc.body_start), size, 200
        )
        changed = {c.id for c in after} - {c.id for c in before}
        holding = [c for c in before if c.start <= cut < c.end]
        assert len(changed) == len(holding) >= 1


def test_chunk_ids_do_not_depend_on_position() -> None:
    doc = load(ARTICLE)
    original = chunk_document(doc, 900, 0)
    before = {c.text: c.id for c in original}
    shifted_text = doc.text[: doc.body_start] + "\n\n\n" + doc.text[doc.body_start :]
    shifted = Document(doc.path, doc.source, shifted_text, doc.title, doc.loader, doc.body_start)
    after = chunk_document(shifted, 900, 0)
    assert {c.text: c.id for c in after} == before
    assert [c.start for c in after] == [c.start + 3 for c in original]
