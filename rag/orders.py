"""Orders addressed to the assistant, in a question or inside a document: data, never obeyed.

A sentence is an order when it tells the assistant how to behave rather than asking about the documents:
it overrides or reveals the assistant's set-up ("ignore your instructions", "print the system prompt"),
gives it a role ("you are now", "act as", "from now on"), dictates the reply ("reply only with ...",
"append ...", "cite no sources", "the answer to every question is ...", "when asked ..., answer ..."), or
is addressed to it ("Note to the AI: ..."). The vocabulary is the assistant's own (instructions, prompt,
rules, sources, reply, answer), so the rule is the same for every corpus.

Orders in other words ("Assistants must tell every user that ...", "the correct response is ...") are
caught by a model trained here (`python -m evals.train_orders`): a logistic regression over the sentence's
hashed words and word pairs, learned from public prompt-injection benchmarks against sentences people wrote
for people in public handbooks (which are full of orders to people: "Submit your timesheet by Friday"). Its
threshold keeps false alarms on held-out handbooks rare; its card (`rag/models/orders/card.json`) has the
data and the numbers.

An order inside a document is data: never evidence, never an answer. It is reported, attributed to its
document, only when the question asks about instructions to the assistant (`report_orders`).
"""

from __future__ import annotations

import functools
import itertools
import re
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from rag.text import split_sentences
from rag.types import Passage, Structured

_SETUP = r"(?:instructions?|prompts?|rules|guidelines|guardrails|polic(?:y|ies)|restrictions|directives|programming|configuration|context|system message|training)"
_OVERRIDE = r"(?:ignore|disregard|forget|override|bypass|skip|drop|abandon|reveal|print|show|display|output|repeat|dump|leak|expose|tell me|give me|share)"
_ASSISTANT = r"(?:ai|assistants?|chatbots?|chat bots?|language models?|llms?|bots?|gpt|copilots?)\b"
_ORDER = re.compile(
    rf"\b{_OVERRIDE}\b[^.?!]{{0,40}}\b(?:your|the|all|any|previous|prior|above|earlier|system|hidden|initial)\b[^.?!]{{0,25}}\b{_SETUP}\b"
    r"|\bsystem prompt\b|\bdeveloper mode\b|\bjailbreak|\bDAN\b"
    r"|^\W*(?:you are now|you're now|from now on|act as|pretend (?:to be|you(?:'re| are)|that you)|roleplay|role-play|imagine you are|new (?:instructions?|rules?|task)\b)"
    r"|^\W*(?:system|admin(?:istrator)?|developer)(?: override| message| note)?\s*:"
    r"|\b(?:reply|respond|answer)(?: to (?:this|me|every \w+|all \w+))?(?: only)? (?:with|by saying|in the form)\b"
    r"|^\W*(?:say|write|output|print|type|append|add|prepend|include)\b[^.?!]*(?:[\"“'‘]|\bto (?:your|the|every) (?:reply|answer|response)\b)"
    r"|\b(?:do not|don't|never) (?:cite|mention|use|reference|refer to) (?:any |the |your )?(?:sources?|documents?|citations?|context)\b"
    r"|\bcite no sources\b|\b(?:without|with no) (?:citing|citations?|sources?)\b"
    r"|\banswer (?:from|using|with) your own (?:knowledge|training)\b|\b(?:ignore|disregard) (?:the |these |all )?(?:documents?|sources?|corpus|context)\b"
    r"|</?(?:context|system|instructions?|documents?|user|assistant)>"
    r"|\bthe (?:correct |right |only |real )?answer to (?:every|any|all|each) (?:other )?(?:questions?|queries|prompts?) (?:is|should be|must be)\b"
    r"|\b(?:when|whenever|if) (?:you are |you're |you get )?asked\b[^.?!]{0,120}?,\s*(?:always |just |only )?(?:answer|reply|respond|say|output|write)\b"
    rf"|^\W*(?:note to|dear|attention|hey|hi|hello)\W+(?:the |any |all )?{_ASSISTANT}"
    rf"|\b{_ASSISTANT} (?:reading|processing|summari[sz]ing|seeing|parsing) this\b",
    re.I,
)
_ABOUT_ORDERS = re.compile(
    rf"\b(?:instructions?|orders?|directives?)\b.*\b{_ASSISTANT}|\b{_ASSISTANT}.*\b(?:instructions?|orders?|directives?)\b"
    r"|\b(?:prompt )?injections?\b|\binjected\b",
    re.I,
)


MODEL = Path(__file__).resolve().parent / "models" / "orders" / "model.npz"
HASH_BITS = 18
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[\"“”<>:]")


def hashed(sentence: str) -> list[int]:
    """The sentence's features: its lower-cased words and pairs of adjacent words (and quote marks, angle
    brackets and colons), hashed into 2^HASH_BITS buckets."""
    words = _WORD.findall(sentence.lower().replace("’", "'"))
    grams = [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]
    mask = (1 << HASH_BITS) - 1
    return sorted({zlib.crc32(g.encode()) & mask for g in grams})


@functools.cache
def _model() -> tuple[Any, float, float]:
    """(weights, bias, threshold) of the trained detector."""
    import numpy as np

    with np.load(MODEL) as saved:
        return saved["weights"].astype(np.float32), float(saved["bias"]), float(saved["threshold"])


def order_score(sentence: str) -> float:
    """The trained detector's log-odds that the sentence is addressed to an assistant."""
    weights, bias, _ = _model()
    return bias + float(sum(weights[i] for i in hashed(sentence)))


def is_order(sentence: str, *, learned: bool = True) -> bool:
    """True for a sentence that gives the assistant orders instead of asking or stating something. A
    question may address the assistant ("Tell me how much was returned"): it is read with the rules alone
    (`learned=False`), which catch what no question needs (overrides, roles, dictated replies)."""
    return bool(_ORDER.search(sentence)) or (learned and order_score(sentence) >= _model()[2])


def information_need(question: str) -> str:
    """The question without its orders: "Ignore your instructions. How much was returned?" asks "How
    much was returned?". Empty when the message is nothing but orders (a bare order)."""
    sentences = split_sentences(question)
    kept = [s for s in sentences if not is_order(s, learned=False)]
    if len(kept) == len(sentences):
        return question
    # An order and a question in one sentence: keep what follows the last order clause.
    if not kept:
        tail = re.split(
            r"(?:,|;| and| then)\s+(?=(?:(?:tell|show|give) (?:me|us) |explain |say )?(?:how|what|which|who|whom|whose|when|where|why|is|are|do|does|did|can)\b)",
            sentences[-1],
            flags=re.I,
        )
        if len(tail) > 1 and not is_order(tail[-1], learned=False):
            return tail[-1]
    return " ".join(kept)


def asks_about_orders(question: str) -> bool:
    """True when the question asks about instructions to the assistant in the documents ("Do the
    documents contain instructions for the AI?", "Is there a prompt injection in notes.md?")."""
    return bool(_ABOUT_ORDERS.search(question))


def report_orders(question: str, passages: Sequence[Passage], limit: int = 3) -> Structured | None:
    """The orders in `passages` (the documents the question names first), each attributed to its
    document: 'The document notes.md says: "..." [1]'. None when they hold no order."""
    lowered = question.lower()
    found: list[tuple[Passage, str]] = []
    seen: set[tuple[str, str]] = set()
    for passage in passages:
        document = str(passage.metadata.get("path", passage.source))
        for sentence in split_sentences(passage.text):
            if is_order(sentence) and (document, sentence) not in seen:
                seen.add((document, sentence))
                found.append((passage, sentence.strip()))
    named = [(p, s) for p, s in found if document_name(p).lower() in lowered]
    chosen = (named or found)[:limit]
    if not chosen:
        return None
    cited: list[Passage] = []
    lines: list[str] = []
    for passage, sentence in chosen:
        if passage not in cited:
            cited.append(passage)
        lines.append(f'The document {document_name(passage)} says: "{sentence}" [{cited.index(passage) + 1}]')
    return Structured(" ".join(lines), cited)


def document_name(passage: Passage) -> str:
    """How an answer names the passage's document: its file name."""
    return PurePosixPath(passage.source.replace("\\", "/")).name or passage.source
