"""Text utilities that ingest and answering share: sentence and paragraph spans (offsets into the text, so
every piece maps back to its source) and the content-word tokenizer of BM25 and the evidence scorer."""

from __future__ import annotations

import functools
import re
from typing import Any

MARKER = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")  # one citation marker: [1] or [1, 2]
MARKERS = re.compile(rf"(?:\s*{MARKER.pattern})+")  # a run of them, with the spaces before and between


def strip_markers(text: str) -> str:
    """The text without its citation markers: "worth £3m [1]." -> "worth £3m."; a marker between two
    words leaves a space, so that removing it never joins them ("2[1]6" -> "2 6")."""
    return MARKERS.sub(lambda m: " " if re.match(r"\w", text[m.end() : m.end() + 1]) else "", text)


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


_TOKEN = re.compile(r"£?\d[\d,.]*\d|\w+", re.UNICODE)
STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your yours
    yourself yourselves s t don doesn didn isn wasn weren won wouldn shouldn also did does said says say
    tell told according much many""".split()
)


@functools.cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str, stem: bool = True) -> list[str]:
    """Lower-cased content words (stopwords dropped), stemmed; numbers lose their separators."""
    words = []
    for match in _TOKEN.finditer(text.lower()):
        word = match.group(0)
        if word[0] == "£" or word[0].isdigit():
            word = word.lstrip("£").replace(",", "")
        elif word in STOPWORDS:
            continue
        words.append(word)
    return list(_stemmer().stemWords(words)) if stem else words


_PART_SPLIT = re.compile(
    r"\s*(?:,\s*(?:and|but)\s+|;\s*|\?\s+|(?:\s+and|,)\s+(?=(?:how|what|which|who|whom|whose|when|where|why|in which|did|was|is|are|does|do|can)\b))",
    re.I,
)


def split_question(question: str) -> list[str]:
    """The parts of a compound question: "How much was the deal, and in which year?" has two."""
    parts: list[str] = []
    for piece in _PART_SPLIT.split(question):
        piece = piece.strip(" ,;") if piece else ""
        if not re.search(r"\w", piece):
            continue
        if not tokenize(piece) and parts:  # "..., and when?" asks about the part before it
            piece = f"{piece.rstrip('?')} {parts[-1]}"
        parts.append(piece)
    return parts if len(parts) > 1 else [question]
