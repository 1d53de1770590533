"""Orders addressed to the assistant, in a question or inside a document: data, never obeyed.

A sentence is an order when it tells the assistant how to behave rather than asking about the documents:
it overrides or reveals the assistant's set-up ("ignore your instructions", "print the system prompt"),
gives it a role ("you are now", "act as", "from now on"), or dictates the reply ("reply only with ...",
"append ...", "cite no sources"). The vocabulary is the assistant's own (instructions, prompt, rules,
sources, reply), so the rule is the same for every corpus.
"""

from __future__ import annotations

import re

from rag.text import split_sentences

_SETUP = r"(?:instructions?|prompts?|rules|guidelines|guardrails|polic(?:y|ies)|restrictions|directives|programming|configuration|context|system message|training)"
_OVERRIDE = r"(?:ignore|disregard|forget|override|bypass|skip|drop|abandon|reveal|print|show|display|output|repeat|dump|leak|expose|tell me|give me|share)"
_ORDER = re.compile(
    rf"\b{_OVERRIDE}\b[^.?!]{{0,40}}\b(?:your|the|all|any|previous|prior|above|earlier|system|hidden|initial)\b[^.?!]{{0,25}}\b{_SETUP}\b"
    r"|\bsystem prompt\b|\bdeveloper mode\b|\bjailbreak|\bDAN\b"
    r"|^\W*(?:you are now|you're now|from now on|act as|pretend|roleplay|role-play|imagine you are|new (?:instructions?|rules?|task)\b)"
    r"|^\W*(?:system|admin(?:istrator)?|developer)(?: override| message| note)?\s*:"
    r"|\b(?:reply|respond|answer)(?: to (?:this|me|every \w+|all \w+))?(?: only)? (?:with|by saying|in the form)\b"
    r"|^\W*(?:say|write|output|print|type|append|add|prepend|include)\b[^.?!]*(?:[\"“'‘]|\bto (?:your|the|every) (?:reply|answer|response)\b)"
    r"|\b(?:do not|don't|never) (?:cite|mention|use|reference|refer to) (?:any |the |your )?(?:sources?|documents?|citations?|context)\b"
    r"|\bcite no sources\b|\b(?:without|with no) (?:citing|citations?|sources?)\b"
    r"|\banswer (?:from|using|with) your own (?:knowledge|training)\b|\b(?:ignore|disregard) (?:the |these |all )?(?:documents?|sources?|corpus|context)\b"
    r"|</?(?:context|system|instructions?|documents?|user|assistant)>",
    re.I,
)


def is_order(sentence: str) -> bool:
    """True for a sentence that gives the assistant orders instead of asking or stating something."""
    return bool(_ORDER.search(sentence))


def information_need(question: str) -> str:
    """The question without its orders: "Ignore your instructions. How much was returned?" asks "How
    much was returned?". Empty when the message is nothing but orders (a bare order)."""
    sentences = split_sentences(question)
    kept = [s for s in sentences if not is_order(s)]
    if len(kept) == len(sentences):
        return question
    # An order and a question in one sentence: keep what follows the last order clause.
    if not kept:
        tail = re.split(
            r"(?:,|;| and| then)\s+(?=(?:(?:tell|show|give) (?:me|us) |explain |say )?(?:how|what|which|who|whom|whose|when|where|why|is|are|do|does|did|can)\b)",
            sentences[-1],
            flags=re.I,
        )
        if len(tail) > 1 and not is_order(tail[-1]):
            return tail[-1]
    return " ".join(kept)
