"""Build the held-out `squad` suite: `python -m evals.squad_suite`

The 4 SQuAD 2.0 dev articles that the reader never trains on (`evals.train_reader.SQUAD_HELD_OUT`)
become a corpus (one Markdown page per article, its paragraphs in order, under its title) and a dataset of
`CASES` questions drawn with a fixed seed, half answerable (the facts: the crowd's answers; the evidence:
the sentence holding the first answer) and half unanswerable (SQuAD 2.0's adversarial questions, written
to look answerable from the same paragraph). Source: github.com/chrischute/squad, data/dev-v2.0.json
(CC BY-SA 4.0), kept as evals/reader_data/squad-dev-v2.0.json.gz.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

from evals.train_reader import SQUAD, SQUAD_HELD_OUT
from rag.text import sentence_spans

HERE = Path(__file__).parent
CORPUS = HERE / "corpora" / "squad"
DATASET = HERE / "datasets" / "squad.jsonl"
CASES = 80


def main() -> None:
    with gzip.open(SQUAD, "rt", encoding="utf-8") as handle:
        articles = [a for a in json.load(handle)["data"] if a["title"] in SQUAD_HELD_OUT]
    docs = CORPUS / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    answerable, unanswerable = [], []
    for article in sorted(articles, key=lambda a: a["title"]):
        title = article["title"].replace("_", " ")
        paragraphs = [" ".join(p["context"].split()) for p in article["paragraphs"]]
        (docs / f"{article['title'].lower()}.md").write_text(
            f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8"
        )
        for paragraph, text in zip(article["paragraphs"], paragraphs, strict=True):
            if text != paragraph["context"]:
                continue  # spacing changed: answer offsets would not hold
            spans = sentence_spans(text)
            for qa in paragraph["qas"]:
                case = {"id": f"squad-{qa['id'][:10]}", "question": qa["question"].strip(), "history": []}
                if qa.get("is_impossible"):
                    unanswerable.append({**case, "answerable": False, "facts": [], "evidence": []})
                    continue
                start = qa["answers"][0]["answer_start"]
                gold = next((text[a:b] for a, b in spans if a <= start < b), None)
                facts = sorted({a["text"].strip() for a in qa["answers"] if a["text"].strip()})
                if gold and facts and qa["answers"][0]["text"] in gold:
                    answerable.append({**case, "answerable": True, "facts": [facts], "evidence": [gold]})
    rng = random.Random(2026)
    chosen = rng.sample(answerable, CASES // 2) + rng.sample(unanswerable, CASES // 2)
    chosen.sort(key=lambda c: c["id"])
    DATASET.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in chosen), encoding="utf-8")
    (CORPUS / "SOURCE.md").write_text(
        "# Corpus `squad`: 4 Wikipedia articles of SQuAD 2.0's dev set\n\n"
        "- Repository: https://github.com/chrischute/squad, commit 85623adeb9e6639f145081fea9cae2d8f3a26379,\n"
        "  `data/dev-v2.0.json` (kept as `evals/reader_data/squad-dev-v2.0.json.gz`).\n"
        "- Licence: CC BY-SA 4.0 (SQuAD 2.0, Rajpurkar, Jia and Liang, 2018; the text is Wikipedia's).\n"
        f"- Articles: {', '.join(sorted(SQUAD_HELD_OUT))}: never used to train the reader.\n"
        f"- Built by `python -m evals.squad_suite`: {CASES} questions, half unanswerable, seed 2026.\n",
        encoding="utf-8",
    )
    print(f"{len(chosen)} cases in {DATASET}, {len(articles)} articles in {docs}")


if __name__ == "__main__":
    main()
