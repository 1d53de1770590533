"""Synthetic corpora for the benchmark, all deterministic for a seed.

- `vocabulary(texts)`: the words of the real corpus with their frequencies, so generated text has the
  corpus's words in roughly the corpus's proportions (BM25 sees realistic term statistics).
- `write_corpus(folder, vocab, paragraphs, seed)`: a corpus of files to ingest with the real model:
  Markdown articles of generated paragraphs plus Lemmy threads (the format `ingest.threads` parses).
- `synthetic_texts(vocab, n, seed)` and `unit_vectors(n, dim, seed)`: chunk-sized texts and random unit
  vectors, to fill a store to 10,000 or 100,000 chunks without embedding them (the vector side of the
  large sizes is random; the texts are real words, so the BM25 side does real work).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_WORD = re.compile(r"[A-Za-z][A-Za-z’'-]*[a-z]|[A-Za-z]|\d[\d,.]*\d|\d")
ARTICLE_PARAGRAPHS = 25  # paragraphs per generated article
THREAD_EVERY = 250  # one generated thread per this many article paragraphs
THREAD_COMMENTS = 12
DIMENSION = 384  # all-MiniLM-L6-v2
DOC_CHUNKS = 20  # synthetic chunks per synthetic document
_INSTANCES = ("lemmy.world", "feddit.de", "lemmy.ml", "sh.itjust.works", "programming.dev")


@dataclass(frozen=True)
class Vocabulary:
    words: list[str]
    weights: list[float]  # relative frequency, summing to 1


def vocabulary(texts: Iterable[str]) -> Vocabulary:
    """Words of `texts` (Markdown front matter and thread UI words included: they are corpus words too)."""
    counts = Counter(w for text in texts for w in _WORD.findall(text))
    if not counts:
        raise ValueError("no words in the corpus")
    words = sorted(counts)  # sorted: the same vocabulary for the same texts, whatever the file order
    total = sum(counts.values())
    return Vocabulary(words, [counts[w] / total for w in words])


def _rng(seed: int) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng(seed)


def _sentences(vocab: Vocabulary, rng: np.random.Generator, count: int) -> list[str]:
    import numpy as np

    lengths = rng.integers(8, 23, size=count)
    picks = rng.choice(len(vocab.words), size=int(lengths.sum()), p=np.asarray(vocab.weights))
    out: list[str] = []
    at = 0
    for length in lengths:
        words = [vocab.words[i] for i in picks[at : at + length]]
        at += length
        words[0] = words[0][:1].upper() + words[0][1:]
        out.append(" ".join(words) + ".")
    return out


def _texts(vocab: Vocabulary, count: int, seed: int, fewest: int, most: int) -> list[str]:
    """`count` texts of `fewest` to `most` generated sentences each."""
    rng = _rng(seed)
    sizes = rng.integers(fewest, most + 1, size=count)
    sentences = _sentences(vocab, rng, int(sizes.sum()))
    out = []
    at = 0
    for size in sizes:
        out.append(" ".join(sentences[at : at + size]))
        at += size
    return out


def paragraphs(vocab: Vocabulary, count: int, seed: int) -> list[str]:
    """`count` paragraphs of 2 to 5 generated sentences each."""
    return _texts(vocab, count, seed, 2, 5)


def _comment(author: str, depth: int, up: int, down: int, op: bool, body: Sequence[str]) -> str:
    pad = "  " * (depth + 1)
    inner = pad + "  "
    meta = ["link", "fedilink", "English", "arrow-up", str(up), "arrow-down", str(down), "·", "3 months ago"]
    lines = [f"{pad}• {author}{'OP' if op else ''}", *(inner + m for m in meta), ""]
    for paragraph in body:
        lines += [inner + paragraph, ""]
    return "\n".join(lines)


def thread(vocab: Vocabulary, comments: int, seed: int) -> str:
    """A Lemmy thread of `comments` generated comments, replies nested up to three deep."""
    rng = _rng(seed)
    bodies = paragraphs(vocab, comments * 2, seed + 1)
    parts = []
    depth = 0
    for i in range(comments):
        author = f"user{int(rng.integers(1000))}@{_INSTANCES[int(rng.integers(len(_INSTANCES)))]}"
        body = bodies[2 * i : 2 * i + 1 + int(rng.integers(2))]
        up, down = int(rng.integers(60)), int(rng.integers(20))
        parts.append(_comment(author, depth, up, down, i == 0, body))
        depth = int(rng.integers(0, min(depth + 2, 4)))  # a reply, a sibling, or back up the tree
    return "\n".join(parts)


def write_corpus(folder: Path, vocab: Vocabulary, count: int, seed: int) -> list[Path]:
    """Write `count` generated paragraphs as Markdown articles, plus one thread per 250 paragraphs."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    texts = paragraphs(vocab, count, seed)
    for n, start in enumerate(range(0, count, ARTICLE_PARAGRAPHS)):
        path = folder / f"article-{n:04d}.md"
        body = "\n\n".join(texts[start : start + ARTICLE_PARAGRAPHS])
        path.write_text(f'---\ntitle: "Generated article {n}"\npublisher: bench\n---\n\n{body}\n')
        written.append(path)
    for n in range(max(1, count // THREAD_EVERY)):
        path = folder / f"thread-{n:03d}.txt"
        path.write_text(thread(vocab, THREAD_COMMENTS, seed + 1000 + n))
        written.append(path)
    return written


def synthetic_texts(vocab: Vocabulary, count: int, seed: int) -> list[str]:
    """`count` chunk-sized texts (5 to 8 generated sentences, about 600-900 characters)."""
    return _texts(vocab, count, seed, 5, 8)


def unit_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    """`count` random vectors of length 1 (float32), uniformly spread over the sphere."""
    import numpy as np

    vectors = _rng(seed).standard_normal((count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def vocabulary_of(folder: Path) -> Vocabulary:
    return vocabulary(p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()) if p.is_file())


def synthetic_chunks(vocab: Vocabulary, size: int, real: int, seed: int) -> tuple[list[str], np.ndarray]:
    """The filler of a store of `size` chunks that holds `real` real ones: the first `size - real` of the
    same `size` generated texts and vectors, whichever system's real chunks they join."""
    fill = max(size - real, 0)
    return synthetic_texts(vocab, size, seed)[:fill], unit_vectors(size, DIMENSION, seed + 1)[:fill]


def synthetic_metadata(texts: Sequence[str], first: int) -> list[dict[str, str | int]]:
    """Chunk metadata of synthetic texts number `first`, `first + 1`, ... (20 chunks a document)."""
    out: list[dict[str, str | int]] = []
    for i, text in enumerate(texts, first):
        doc = f"synthetic/doc-{i // DOC_CHUNKS:05d}.md"
        out.append(
            {
                "path": f"/{doc}", "source": doc, "title": f"Synthetic document {i // DOC_CHUNKS}",
                "loader": "markdown", "kind": "page", "author": "", "position": i % DOC_CHUNKS,
                "start": 0, "end": len(text),
            }
        )  # fmt: skip
    return out


def edit_one_paragraph(path: Path) -> str:
    """Append a sentence to the fourth paragraph of `path`; returns the original text."""
    original = path.read_text(encoding="utf-8")
    parts = original.split("\n\n")
    parts[min(3, len(parts) - 1)] += " The benchmark edited this paragraph."
    path.write_text("\n\n".join(parts), encoding="utf-8")
    return original
