"""The reader: a model that scores every sentence of the retrieved passages as the answer to a question.

Trained here (`python -m evals.train_reader`) and measured against the gold evidence of every suite by
`python -m evals.ceiling` (reader top-1 and answerability AUC beside plain cosine and the answerer's own
ranking). Its probability is one signal of the evidence score and of the answerability judge
(`rag.evidence`), weighted by `rag eval --calibrate`; deciding alone, it refused too few unanswerable
questions (README, "The reader"). Readers, chosen by name (`answer.reader`, `make_reader`):
- `trained`: all-MiniLM-L6-v2 fine-tuned here on question/answer pairs of handbooks, docs and policies to
  embed a question next to the sentences that answer it, shipped as int8 ONNX under `rag/models/reader/`
  and run on ONNX Runtime (no torch);
- `cross-encoder:NAME_OR_PATH`: any sentence-transformers `CrossEncoder` on disk, its scores read as
  probabilities through the logistic function when they are not already.

What a model reads of a candidate is `candidate_text(sentence, where)`: the sentence, then where it sits
(page title and section path). Training builds its examples with the same function.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import UnknownBackend
from rag.index.embeddings import EmbeddingError, mean_pooled, onnx_session
from rag.maths import logistic

MODEL_DIR = Path(__file__).with_name("models") / "reader"
MAX_TOKENS = 128
CACHE = 4096  # readings kept (a question and its candidates' scores)


class ReaderError(EmbeddingError):
    """The reader's model is missing, damaged or cannot run (mapped as the embedding model's errors are)."""


def candidate_text(sentence: str, where: str) -> str:
    """What the reader reads of a candidate sentence: the sentence first (truncation cuts the context,
    never the sentence), then its page title and section path."""
    sentence = " ".join(sentence.split())
    where = " ".join(where.split())
    return f"{sentence} | {where}" if where else sentence


@dataclass(frozen=True)
class Candidate:
    """A sentence of a passage, as the reader is asked about it."""

    passage: int  # index into the passages
    start: int  # span inside the passage text
    end: int
    text: str
    where: str  # page title and section path


class Reader(ABC):
    @abstractmethod
    def score(self, question: str, candidates: Sequence[Candidate]) -> list[float]:
        """The probability that each candidate sentence answers the question."""


class TrainedReader(Reader):
    """The shipped reader: all-MiniLM-L6-v2 fine-tuned here to embed a question next to the sentences that
    answer it (`python -m evals.train_reader`), on ONNX Runtime: `model.onnx` (int8; token embeddings,
    mean-pooled and normalized here) and `tokenizer.json` in `path`, checked against the SHA-256 in its
    `model.json`. A sentence's probability is the logistic function of its cosine to the question, with
    the scale and bias fitted on held-out sources at training time. A card of kind "cross-encoder" holds
    a pair classifier instead (`train_reader --kind cross-encoder`; measured, not shipped): the logistic
    function of its logit for the (question, candidate) pair."""

    def __init__(self, path: Path = MODEL_DIR, exact: bool | None = None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        card = _read_card(path)
        model = path / "model.onnx"
        if not model.is_file():
            raise ReaderError(f"the reader's model is missing: {model.name} in {path.name}")
        data = model.read_bytes()
        if hashlib.sha256(data).hexdigest() != card.get("sha256"):
            raise ReaderError("the reader's model does not match its SHA-256 in model.json")
        try:
            self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises its own Exception subclass
            raise ReaderError(f"cannot load the reader's tokenizer: {exc}") from None
        self.kind = str(card.get("kind", "bi-encoder"))
        if self.kind not in ("bi-encoder", "cross-encoder"):
            raise ReaderError(f"the reader's model is of an unknown kind: {self.kind!r}")
        self.tokenizer.enable_truncation(int(card.get("max_tokens", MAX_TOKENS)), strategy="longest_first")
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        self.scale, self.bias = float(card.get("scale", 1.0)), float(card.get("bias", 0.0))
        onnxruntime.set_default_logger_severity(3)
        if exact is None:
            exact = needs_unsigned_weights()
        source: str | bytes = unsigned_weights(data) if exact else str(model)
        self.session = onnx_session(source)
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.batch_size = 16
        self._cache: OrderedDict[bytes, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Any:
        """Normalized mean-pooled embeddings of `texts`, in batches of like lengths. (The int8 model
        quantizes each batch's activations with one scale, so a text's embedding depends slightly on its
        batch: `score` reads a question and its candidates in one call, and keeps the result whole.)"""
        import numpy as np

        out = mean_pooled(self.session, self.tokenizer, self.inputs, texts, self.batch_size, True)
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def cosines(self, question: str, texts: Sequence[str]) -> list[float]:
        vectors = self.embed([question, *texts])
        return [float(x) for x in vectors[1:] @ vectors[0]]

    def logits(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """A cross-encoder's logit for each (question, candidate) pair, in batches of like lengths."""
        import numpy as np

        out = [0.0] * len(pairs)
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        for at in range(0, len(order), self.batch_size):
            batch = order[at : at + self.batch_size]
            encoded = self.tokenizer.encode_batch([pairs[i] for i in batch])
            feeds = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
            }
            for i, value in zip(batch, self.session.run(None, feeds)[0].reshape(-1), strict=True):
                out[i] = float(value)
        return out

    def raw_scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """The model's own scores of (question, candidate) pairs (cosines or logits): what training
        measures the int8 model by."""
        if self.kind == "cross-encoder":
            return self.logits(pairs)
        questions, texts = self.embed([q for q, _ in pairs]), self.embed([c for _, c in pairs])
        return [float(x) for x in (questions * texts).sum(axis=1)]

    def score(self, question: str, candidates: Sequence[Candidate]) -> list[float]:
        """The same question and candidates always get the same scores: the last `CACHE` readings are
        kept whole (follow-ups, a question's parts and calibration read the same ones again)."""
        if not candidates:
            return []
        texts = tuple(candidate_text(c.text, c.where) for c in candidates)
        key = hashlib.blake2b("\x1f".join((question, *texts)).encode(), digest_size=16).digest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return list(self._cache[key])
        if self.kind == "cross-encoder":
            raw = self.logits([(question, t) for t in texts])
        else:
            raw = self.cosines(question, texts)
        scores = [logistic(self.scale * x + self.bias) for x in raw]
        with self._lock:
            self._cache[key] = scores
            while len(self._cache) > CACHE:
                self._cache.popitem(last=False)
        return list(scores)


def needs_unsigned_weights() -> bool:
    """Whether this CPU's int8 kernel for signed weights could round (x86 without VNNI: ONNX Runtime then
    multiplies with AVX2's saturating `vpmaddubsw`). With VNNI, or on other machines, it is exact."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # unknown: the exact way
    return "avx512_vnni" not in flags and "avx_vnni" not in flags


def unsigned_weights(model: bytes) -> bytes:
    """The int8 model with its signed weights moved to unsigned ones (w + 128, zero point + 128): the same
    numbers, multiplied by ONNX Runtime's exact unsigned kernel on every x86 CPU, so that the reader's
    scores are the same on every machine (about twice as slow as VNNI's signed kernel)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(model)
    initializers = {t.name: t for t in graph.graph.initializer}
    for node in graph.graph.node:
        if node.op_type != "MatMulInteger":
            continue
        for name in (node.input[1], node.input[3]):
            tensor = initializers.get(name)
            if tensor is None:
                continue
            values = numpy_helper.to_array(tensor)
            if values.dtype == np.int8:
                shifted = (values.astype(np.int16) + 128).astype(np.uint8)
                tensor.CopyFrom(numpy_helper.from_array(shifted, name))
    return bytes(graph.SerializeToString())


class CrossEncoderReader(Reader):
    """Any sentence-transformers `CrossEncoder`, by name or path (offline: it must be on disk)."""

    def __init__(self, name: str) -> None:
        try:
            from sentence_transformers import CrossEncoder

            self.model = CrossEncoder(name, local_files_only=True)
        except Exception as exc:  # a missing or broken model: one line, not a traceback
            raise ReaderError(f"cannot load the cross-encoder {name!r}: {exc}") from None

    def score(self, question: str, candidates: Sequence[Candidate]) -> list[float]:
        if not candidates:
            return []
        pairs = [(question, candidate_text(c.text, c.where)) for c in candidates]
        raw = [float(x) for x in self.model.predict(pairs, show_progress_bar=False)]
        if all(0.0 <= x <= 1.0 for x in raw):
            return raw
        return [logistic(x) for x in raw]


def _read_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads((path / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ReaderError(
            f"the reader's model card is missing or damaged: model.json in {path.name}"
        ) from None
    return card if isinstance(card, dict) else {}


@functools.lru_cache(maxsize=1)
def _shipped() -> TrainedReader:
    """The shipped reader, loaded once per process (its readings cache is shared)."""
    return TrainedReader()


READERS = ("trained", "cross-encoder:NAME_OR_PATH", "none")


def make_reader(name: str) -> Reader | None:
    """The reader called `name` (`answer.reader`); None for "none"."""
    if name == "none":
        return None
    if name == "trained":
        return _shipped()
    if name.startswith("cross-encoder:") and name.partition(":")[2].strip():
        return CrossEncoderReader(name.partition(":")[2].strip())
    raise UnknownBackend(f"unknown reader {name!r}; known: {', '.join(READERS)}")
