"""Sentence and paragraph spans: offsets into the text, so every piece maps back to its source."""

from __future__ import annotations

import re

Span = tuple[int, int]

# A blank line (possibly holding spaces) separates paragraphs.
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# Sentence end: terminal punctuation, optional closing quotes/brackets, whitespace, then something that
# can open a sentence (capital, digit, quote, bracket, currency, ellipsis).
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+[\"'“‘(\[£$€\d\u2026A-Z\u00c0-\u024f\u4e00-\u9fff])")
_ABBREVIATIONS = frozenset(
    [
        "prof",
        "dr",
        "mr",
        "mrs",
        "ms",
        "st",
        "jr",
        "sr",
        "mt",
        "no",
        "vs",
        "etc",
        "inc",
        "ltd",
        "co",
        "corp",
        "fig",
        "gen",
        "gov",
        "sen",
        "rep",
        "rev",
        "col",
        "lt",
        "sgt",
        "capt",
    ]
)
_ABBREV_TAIL = re.compile(r"(?:^|[\s(\[“\"'])((?:[A-Za-z]\.)*[A-Za-z]+)\.$")
# A short attribution after a closing quote ("… forces?” Parton said.") belongs to the quote.
_ATTRIBUTION = re.compile(
    r"[A-Z][\w’'.-]*(?: [A-Z][\w’'.-]*){0,3},? (?:said|says|added|adds|noted|notes|wrote|writes)\."
)


def _strip(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def paragraph_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Spans of the non-blank paragraphs of `text[start:end]`, whitespace trimmed."""
    end = len(text) if end is None else end
    spans: list[Span] = []
    pos = start
    for match in _PARAGRAPH_BREAK.finditer(text, start, end):
        s, e = _strip(text, pos, match.start())
        if e > s:
            spans.append((s, e))
        pos = match.end()
    s, e = _strip(text, pos, end)
    if e > s:
        spans.append((s, e))
    return spans


def _is_abbreviation(text: str, dot: int, lo: int) -> bool:
    """True when the period at `dot` ends an abbreviation ("Prof.", "e.g.", "U.S.", an initial)."""
    if text[dot] != ".":
        return False
    match = _ABBREV_TAIL.search(text, max(lo, dot - 20), dot + 1)
    if not match:
        return False
    word = match.group(1)
    if "." in word:  # e.g. / i.e. / U.S.
        return True
    return word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper())


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Spans of the sentences of `text[start:end]`; paragraph breaks always end a sentence.

    The spans are trimmed, ordered, non-overlapping, and together cover every non-space character.
    """
    end = len(text) if end is None else end
    spans: list[Span] = []
    for p_start, p_end in paragraph_spans(text, start, end):
        pos = p_start
        for match in _SENTENCE_END.finditer(text, p_start, p_end):
            first_punct = match.start()
            if _is_abbreviation(text, first_punct, p_start):
                continue
            s, e = _strip(text, pos, match.end())
            if e > s:
                _append(text, spans, s, e)
            pos = match.end()
        s, e = _strip(text, pos, p_end)
        if e > s:
            _append(text, spans, s, e)
    return spans


def _append(text: str, spans: list[Span], s: int, e: int) -> None:
    if (
        spans
        and text[spans[-1][1] - 1] in '”"'
        and _ATTRIBUTION.fullmatch(text, s, e)
        and not _PARAGRAPH_BREAK.search(text, spans[-1][1], s)
    ):
        spans[-1] = (spans[-1][0], e)
    else:
        spans.append((s, e))


def split_sentences(text: str) -> list[str]:
    """The sentences of `text` as strings."""
    return [text[s:e] for s, e in sentence_spans(text)]
