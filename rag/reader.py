"""The reader: a model that scores every sentence of the retrieved passages as the answer to a question.

Trained here (`python -m evals.train_reader`) and measured against the gold evidence of every suite by
`python -m evals.ceiling` (reader top-1 and answerability AUC beside plain cosine and the answerer's own
ranking). Not yet the answer path's default: with it deciding alone, refusal of unanswerable questions
fell on the held-out suites (README, "The reader"). Readers, chosen by name (`make_reader`):
- `trained`: all-MiniLM-L6-v2 fine-tuned here on question/answer pairs of handbooks, docs and policies to
  embed a question next to the sentences that answer it, shipped as int8 ONNX under `rag/models/reader/`
  and run on ONNX Runtime (no torch);
- `cross-encoder:NAME_OR_PATH`: any sentence-transformers `CrossEncoder` on disk, its scores read as
  probabilities through the logistic function when they are not already.

What a model reads of a candidate is `candidate_text(sentence, where)`: the sentence, then where it sits
(page title and section path). Training builds its examples with the same function.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_DIR = Path(__file__).with_name("models") / "reader"
MAX_TOKENS = 128


class ReaderError(RuntimeError):
    """The reader's model is missing, damaged or cannot run."""


def candidate_text(sentence: str, where: str) -> str:
    """What the reader reads of a candidate sentence: the sentence first (truncation cuts the context,
    never the sentence), then its page title and section path."""
    sentence = " ".join(sentence.split())
    where = " ".join(where.split())
    return f"{sentence} | {where}" if where else sentence


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


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
    the scale and bias fitted on held-out sources at training time."""

    def __init__(self, path: Path = MODEL_DIR) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        card = _read_card(path)
        model = path / "model.onnx"
        if not model.is_file():
            raise ReaderError(f"the reader's model is missing: {model.name} in {path.name}")
        if hashlib.sha256(model.read_bytes()).hexdigest() != card.get("sha256"):
            raise ReaderError("the reader's model does not match its SHA-256 in model.json")
        try:
            self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises its own Exception subclass
            raise ReaderError(f"cannot load the reader's tokenizer: {exc}") from None
        self.tokenizer.enable_truncation(int(card.get("max_tokens", MAX_TOKENS)))
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        self.scale, self.bias = float(card.get("scale", 1.0)), float(card.get("bias", 0.0))
        onnxruntime.set_default_logger_severity(3)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.batch_size = 16

    def embed(self, texts: Sequence[str]) -> Any:
        """Normalized mean-pooled embeddings of `texts`, in batches of like lengths."""
        import numpy as np

        out = np.zeros((len(texts), 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for at in range(0, len(order), self.batch_size):
            batch = order[at : at + self.batch_size]
            encoded = self.tokenizer.encode_batch([texts[i] for i in batch])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            tokens = self.session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            vectors = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[batch] = vectors
        return out

    def cosines(self, question: str, texts: Sequence[str]) -> list[float]:
        vectors = self.embed([question, *texts])
        return [float(x) for x in vectors[1:] @ vectors[0]]

    def score(self, question: str, candidates: Sequence[Candidate]) -> list[float]:
        if not candidates:
            return []
        cosines = self.cosines(question, [candidate_text(c.text, c.where) for c in candidates])
        return [logistic(self.scale * x + self.bias) for x in cosines]


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


READERS = ("trained", "cross-encoder:NAME_OR_PATH")


def make_reader(name: str) -> Reader:
    """The reader called `name` (`answer.reader`)."""
    if name == "trained":
        return TrainedReader()
    if name.startswith("cross-encoder:") and name.partition(":")[2].strip():
        return CrossEncoderReader(name.partition(":")[2].strip())
    raise ReaderError(f"unknown reader {name!r}; known: {', '.join(READERS)}")
