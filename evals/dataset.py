"""Evaluation datasets: JSONL, one case a line.

    {"id": str, "question": str, "history": [{"role", "content"}] (optional), "answerable": bool,
     "facts": [[alternative, ...], ...], "evidence": [verbatim quote from the corpus, ...],
     "tags": [str, ...] (optional)}

`facts` is a list of groups: an answer covers a group when it contains any of the group's alternatives
as whole words (case-insensitive, quotes, whitespace and number formats normalized; see
`evals.metrics.fact_matches`). `evidence` are exact quotes of the corpus that support the answer. `tags`
label a case (e.g. "number", "follow-up") for reports; they do not change how it is scored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import UsageError
from rag.types import Turn

_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "\u00a0": " "})
_KEYS = {"id", "question", "history", "answerable", "facts", "evidence", "tags"}
_REQUIRED = {"id", "question", "answerable", "facts", "evidence"}


def normalize(text: str) -> str:
    """Lower case, straight quotes, single spaces: how facts and quotes are matched."""
    return re.sub(r"\s+", " ", text.translate(_QUOTES)).strip().casefold()


class DatasetError(UsageError):
    """A malformed dataset; the message names the line and the reason."""


@dataclass(frozen=True)
class EvalCase:
    id: str
    question: str
    answerable: bool
    facts: list[list[str]]
    evidence: list[str]
    history: list[Turn] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


def parse_case(data: Any) -> EvalCase:
    """One case from its JSON object; raises ValueError with the reason."""
    if not isinstance(data, dict):
        raise ValueError("a case must be a JSON object")
    missing = _REQUIRED - data.keys()
    if missing:
        raise ValueError(f"missing key(s): {', '.join(sorted(missing))}")
    unknown = data.keys() - _KEYS
    if unknown:
        raise ValueError(f"unknown key(s): {', '.join(sorted(unknown))}")
    if not isinstance(data["id"], str) or not data["id"].strip():
        raise ValueError("'id' must be a non-empty string")
    if not isinstance(data["question"], str) or not data["question"].strip():
        raise ValueError("'question' must be a non-empty string")
    if not isinstance(data["answerable"], bool):
        raise ValueError("'answerable' must be true or false")
    facts = data["facts"]
    if not isinstance(facts, list) or not all(_is_str_list(g) and g for g in facts):
        raise ValueError("'facts' must be a list of non-empty lists of strings")
    if not _is_str_list(data["evidence"]):
        raise ValueError("'evidence' must be a list of strings")
    if data["answerable"] and not facts:
        raise ValueError("an answerable case needs at least one fact group")
    if not data["answerable"] and (facts or data["evidence"]):
        raise ValueError("an unanswerable case has no facts and no evidence")
    history = data.get("history", [])
    if not isinstance(history, list):
        raise ValueError("'history' must be a list of {role, content} objects")
    turns = []
    for i, turn in enumerate(history, 1):
        if not (
            isinstance(turn, dict)
            and turn.get("role") in ("user", "assistant")
            and isinstance(turn.get("content"), str)
        ):
            raise ValueError(f"history turn {i} must be {{'role': 'user'|'assistant', 'content': str}}")
        turns.append(Turn(turn["role"], turn["content"]))
    tags = data.get("tags", [])
    if not _is_str_list(tags):
        raise ValueError("'tags' must be a list of non-empty strings")
    return EvalCase(
        data["id"], data["question"], data["answerable"], facts, data["evidence"], turns, list(tags)
    )


def load_dataset(path: Path) -> list[EvalCase]:
    """Every case of a JSONL file; raises `DatasetError` naming the first bad line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    cases: list[EvalCase] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            case = parse_case(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: {exc}") from None
        if case.id in seen:
            raise DatasetError(f"{path}:{number}: duplicate id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise DatasetError(f"{path}: no cases")
    return cases


def quotes_not_in_corpus(cases: Iterable[EvalCase], corpus_texts: Iterable[str]) -> list[tuple[str, str]]:
    """(case id, quote) for every evidence quote that no corpus document contains."""
    texts = [normalize(t) for t in corpus_texts]
    return [(c.id, q) for c in cases for q in c.evidence if not any(normalize(q) in t for t in texts)]
