"""Synthetic reader questions: the local LLM asks, in its own words, what a sentence of a mined page answers.

Mined questions (`evals.mine_reader`) are the ones authors wrote above their answers, so they share the
answer's wording; users ask in other words. This command picks informative sentences of the mined sources'
pages (`evals/reader_data/sentences.jsonl.gz`, never an evaluation corpus: the mining manifest checks that)
and asks the local LLM (`../shared/tools/local-llm start`, an OpenAI-compatible server) for the question
someone who has not read the page would ask, answered by that sentence. It appends to
`evals/reader_data/synthetic.jsonl.gz` (resumable: sentences already asked are skipped) and records the
model and prompt with every row; `python -m evals.train_reader --synthetic` trains with them.

    python -m evals.synth_reader [--count 1500] [--seed 7] [--base-url http://127.0.0.1:8089/v1]

Sentences are drawn evenly across sources (round robin over a seeded shuffle), one per page section, among
sentences of 8-40 words that read as prose (mostly letters, ending with a full stop). A reply is kept when it
is one line ending with "?" of 4-30 words that does not repeat the sentence's own word sequence (the longest
run of shared words is under 5).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "reader_data"
OUT = DATA / "synthetic.jsonl.gz"
PROMPT_VERSION = 1
SYSTEM = (
    "You write the questions that employees, contributors and users ask about their organisation's documents."
)
PROMPT = """Page: {where}

{paragraph}

Someone who has not read this page asks a question, and the answer is this sentence:
"{sentence}"

Write that question as they would ask it: short, in everyday words, not copying the sentence's wording. \
Reply with the question only."""


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.casefold())


def prose(text: str) -> bool:
    words = text.split()
    if not 8 <= len(words) <= 40 or not text.rstrip().endswith("."):
        return False
    letters = sum(c.isalpha() or c.isspace() for c in text)
    return letters / max(1, len(text)) >= 0.9


def longest_shared_run(a: list[str], b: list[str]) -> int:
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def accepted(reply: str, sentence: str) -> str | None:
    line = reply.strip().strip('"').strip()
    if "\n" in line or not line.endswith("?"):
        return None
    words = _words(line)
    if not 4 <= len(words) <= 30 or longest_shared_run(words, _words(sentence)) >= 5:
        return None
    return line


def _key(row: dict[str, Any]) -> str:
    return hashlib.sha256(f"{row['source']}\0{row['path']}\0{row['text']}".encode()).hexdigest()[:16]


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows written so far; a last row cut off by a killed run is dropped and the file rewritten
    without it (to a temporary file, then renamed)."""
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                rows.append(json.loads(line))
        return rows
    except (EOFError, gzip.BadGzipFile, json.JSONDecodeError):
        partial = path.with_suffix(".partial")
        with gzip.open(partial, "wt", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        partial.replace(path)
        return rows


def pick(sentences: list[dict[str, Any]], seed: int) -> list[tuple[dict[str, Any], str]]:
    """(sentence, its paragraph) in the order to ask: round robin over sources, one per page section."""
    blocks: dict[tuple[str, str, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    for s in sentences:
        blocks[(s["source"], s["path"], tuple(s["section"]))].append(s)
    rng = random.Random(seed)
    per_source: dict[str, list[tuple[dict[str, Any], str]]] = defaultdict(list)
    for (source, _, _), rows in sorted(blocks.items()):
        good = [n for n, r in enumerate(rows) if prose(r["text"])]
        if not good:
            continue
        n = rng.choice(good)
        paragraph = " ".join(r["text"] for r in rows[max(0, n - 2) : n + 3])
        per_source[source].append((rows[n], paragraph))
    for queue in per_source.values():
        rng.shuffle(queue)
    order: list[tuple[dict[str, Any], str]] = []
    queues = [per_source[s] for s in sorted(per_source)]
    while any(queues):
        for q in queues:
            if q:
                order.append(q.pop())
    return order


def ask(client: Any, model: str, sentence: dict[str, Any], paragraph: str) -> str:
    where = " › ".join([sentence["title"], *sentence["section"]])
    response = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": PROMPT.format(where=where, paragraph=paragraph, sentence=sentence["text"]),
            },
        ],
        temperature=0.7,
        max_tokens=48,
        seed=PROMPT_VERSION,
    )
    return response.choices[0].message.content or ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1500, help="questions to have in the file")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--base-url", default="http://127.0.0.1:8089/v1")
    args = parser.parse_args(argv)
    from openai import OpenAI

    client = OpenAI(base_url=args.base_url, api_key="local", timeout=120)
    model = Path(client.models.list().data[0].id).name
    with gzip.open(DATA / "sentences.jsonl.gz", "rt", encoding="utf-8") as handle:
        sentences = [json.loads(line) for line in handle if line.strip()]
    rows = read_rows(OUT)
    done = {row["key"] for row in rows}
    kept = sum(1 for r in rows if r["question"])
    started, asked = time.monotonic(), 0
    for sentence, paragraph in pick(sentences, args.seed):
        if kept >= args.count:
            break
        key = _key(sentence)
        if key in done:
            continue
        reply = ask(client, model, sentence, paragraph)
        question = accepted(reply, sentence["text"])
        row = {
            "key": key, "source": sentence["source"], "path": sentence["path"], "title": sentence["title"],
            "section": sentence["section"], "answer": sentence["text"], "question": question or "",
            "reply": reply, "model": model, "prompt": PROMPT_VERSION,
        }  # fmt: skip
        done.add(key)
        kept += bool(question)
        asked += 1
        # one gzip member per row: a run killed mid-write loses at most that row (`read_rows`)
        with gzip.open(OUT, "at", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        if asked % 20 == 0:
            rate = asked / (time.monotonic() - started)
            print(f"{kept} kept of {len(done)} asked, {rate * 3600:.0f}/h", flush=True)
    print(f"{kept} questions in {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
