"""Structure-aware chunking.

Pages (Markdown, HTML, and headed plain text or PDF): each section (the blocks under one heading) is
chunked on its own, and its heading path is the chunk's `section` metadata ("Leave › Annual leave"): the
headings are context for retrieval and for citations, never part of a chunk's text, so never quoted.
List items, table rows and paragraphs are packing units like paragraphs.

Prose: paragraphs are packed into chunks of up to `chunk_size` characters; a paragraph longer than that is
split on sentences. Consecutive chunks of a document share a sentence-aligned overlap of up to
`chunk_overlap` characters. Forum threads: every comment is its own chunk (split on sentences when long),
never merged with another comment. Every chunk is an exact slice of its document's text:
`document.text[chunk.start:chunk.end] == chunk.text`.

Chunk ids are content hashes of (document path, kind, author, text, occurrence), independent of position,
so an edit elsewhere in a file leaves a chunk's id (and its embedding) alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ingest.loaders import Document
from ingest.structure import section_paths
from ingest.threads import comment_line
from rag.text import Span, paragraph_spans, sentence_spans

Metadata = dict[str, str | int | float | bool]


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    start: int
    end: int
    metadata: Metadata


def _hard_split(text: str, start: int, end: int, size: int) -> list[Span]:
    """Split an over-long sentence at whitespace so that no piece exceeds `size`."""
    pieces: list[Span] = []
    while end - start > size:
        cut = text.rfind(" ", start + size // 2, start + size)
        cut = cut if cut > start else start + size
        pieces.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        pieces.append((start, end))
    return pieces


def _units(text: str, start: int, end: int, size: int) -> list[list[Span]]:
    """Packing units: each is a list of sentence spans that must stay in one chunk (a paragraph that fits)
    or a single sentence of a paragraph that does not fit."""
    units: list[list[Span]] = []
    for p_start, p_end in paragraph_spans(text, start, end):
        sentences = [
            piece for s, e in sentence_spans(text, p_start, p_end) for piece in _hard_split(text, s, e, size)
        ]
        if p_end - p_start <= size:
            units.append(sentences)
        else:
            units.extend([s] for s in sentences)
    return units


def pack(text: str, start: int, end: int, size: int, overlap: int) -> list[Span]:
    """Chunk spans over `text[start:end]`: units packed greedily up to `size` characters, each chunk after the
    first starting with the previous chunk's trailing sentences (up to `overlap` characters)."""
    spans: list[Span] = []
    current: list[Span] = []  # sentences of the chunk being built
    fresh = 0  # how many of `current` are new (not overlap)
    for unit in _units(text, start, end, size):
        if fresh and unit[-1][1] - current[0][0] > size:
            spans.append((current[0][0], current[-1][1]))
            tail: list[Span] = []
            for sentence in reversed(current):
                if unit[-1][1] - sentence[0] > size or current[-1][1] - sentence[0] > overlap:
                    break
                tail.insert(0, sentence)
            current, fresh = tail, 0
        current.extend(unit)
        fresh += len(unit)
    if fresh:
        spans.append((current[0][0], current[-1][1]))
    return spans


def _chunk_id(doc: Document, kind: str, author: str, text: str, seen: dict[str, int]) -> str:
    key = "\x1f".join([str(doc.path), kind, author, text])
    occurrence = seen.get(key, 0)
    seen[key] = occurrence + 1
    return hashlib.sha256(f"{key}\x1f{occurrence}".encode()).hexdigest()[:32]


def sections(doc: Document) -> list[tuple[Span, tuple[str, ...]]]:
    """The spans of a document's runs of non-heading blocks, each with the headings above it; the whole
    body when the document has no block structure."""
    if not doc.blocks:
        return [((doc.body_start, len(doc.text)), ())]
    runs: list[tuple[Span, tuple[str, ...]]] = []
    for block, path in zip(doc.blocks, section_paths(doc.text, doc.blocks, doc.title), strict=True):
        if block.kind == "heading":
            continue
        if runs and runs[-1][1] == path and not _heading_between(doc, runs[-1][0][1], block.start):
            runs[-1] = ((runs[-1][0][0], block.end), path)
        else:
            runs.append(((block.start, block.end), path))
    return runs


def _heading_between(doc: Document, start: int, end: int) -> bool:
    return any(b.kind == "heading" and start <= b.start < end for b in doc.blocks)


def chunk_document(doc: Document, size: int, overlap: int) -> list[Chunk]:
    """Cut a document into chunks with metadata (see the module docstring)."""
    base: Metadata = {
        "path": str(doc.path),
        "source": doc.source,
        "title": doc.title,
        "loader": doc.loader,
        **{f"meta_{k}": v for k, v in doc.meta.items()},
    }
    pieces: list[tuple[Span, Metadata]] = []
    if doc.thread is None:
        author = doc.meta.get("author", "")
        for (start, end), path in sections(doc):
            context = " › ".join([doc.title, *path])
            for span in pack(doc.text, start, end, size, overlap):
                pieces.append(
                    (
                        span,
                        {"kind": doc.kind, "author": author, "section": " › ".join(path), "context": context},
                    )
                )
    else:
        if doc.thread.preamble:
            for span in pack(doc.text, *doc.thread.preamble, size, overlap):
                pieces.append((span, {"kind": "post", "author": "", "context": doc.title}))
        comments = doc.thread.comments
        for c in comments:
            parent = comments[c.parent] if c.parent is not None else None
            meta: Metadata = {
                "kind": "comment",
                "author": c.author,
                "comment": c.index,
                "upvotes": c.upvotes,
                "downvotes": c.downvotes,
                "score": c.score,
                "is_op": c.is_op,
                "edited": c.edited,
                "age": c.age,
                "depth": c.depth,
                "parent": parent.index if parent else -1,
                "parent_author": parent.author if parent else "",
            }
            meta["context"] = comment_line(meta)
            for span in pack(doc.text, c.start, c.end, size, overlap):
                pieces.append((span, meta))
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for position, ((s, e), meta) in enumerate(pieces):
        text = doc.text[s:e]
        cid = _chunk_id(doc, str(meta["kind"]), str(meta["author"]), text, seen)
        metadata: Metadata = {**base, **meta, "position": position, "start": s, "end": e}
        chunks.append(Chunk(cid, text, s, e, metadata))
    return chunks
