"""Parser for forum threads pasted (as plain text) from the Lemmy web UI.

A pasted thread looks like this (indentation matters, ``·`` is U+00B7)::

      • TheGrandNagus@lemmy.world
        link
        fedilink
        English
        arrow-up
        26
        arrow-down
        2
        ·
        edit-2
        5 months ago

        First paragraph of the body.

        Second paragraph.

        • 0x815@feddit.deOP
          link
          ...

Each comment starts with a *header* line ``<indent>• name@instance`` (a trailing ``OP`` marks
the original poster), followed by *metadata* lines (the words ``link``, ``fedilink``,
``arrow-up`` ... are the text of the UI's icons), a blank line and the *body*. The bullet's
indentation gives the reply depth (two columns per level).

Rules, chosen to be lenient with real pastes while never mistaking body text for metadata:

* A line is a header only when it matches ``• name@instance[OP]`` *and* the run of non-blank
  lines right after it contains an ``arrow-up`` line within its first few lines. So a bulleted
  e-mail address inside a body stays body text.
* In that run, any lines before ``arrow-up`` (normally ``link``, ``fedilink`` and a language,
  each of which may be missing) are ignored. Then ``arrow-up``, an integer, ``arrow-down``, an
  integer must follow; otherwise :class:`ThreadParseError` is raised. Then come an optional
  ``·``, an optional ``edit-2`` (the comment was edited) and the age: the next line of the same
  run, whatever its wording (``5 months ago``, ``just now``, a translated UI ...). The age is
  never looked for past a blank line, so it is ``""`` when the run ends early.
* The body is everything after the metadata up to the next header (or the end of the text),
  with surrounding whitespace stripped. Paragraphs are separated by whitespace-only lines.
* Depth is ``(indent - smallest header indent) // 2``. The parent is the nearest preceding
  comment of depth ``depth - 1`` that is still "open" (not closed by a later comment of equal
  or smaller depth). A comment whose parent is missing from the paste (e.g. a thread copied
  from the middle) gets ``parent=None`` but keeps its indentation-derived depth.

Lines end with ``\\n`` or ``\\r\\n``; all spans are offsets into the exact string passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Comment", "Thread", "ThreadParseError", "comment_line", "looks_like_thread", "parse_thread"]

# `• name@instance` with an optional `OP` glued to the end. The instance is matched lazily so
# that `feddit.deOP` splits into `feddit.de` + `OP` (Lemmy shows instance names in lowercase).
_HEADER_RE = re.compile(
    r"\ufeff?(?P<indent>[ \u00a0]*)•[ \u00a0]*(?P<author>[^\s@•]+@[^\s@]+?)(?P<op>OP)?\s*"
)
# Digits only (capped well below int()'s digit limit): lemmy-ui abbreviates counts >= 1000 ("1.2K").
_INT_RE = re.compile(r"[0-9]{1,15}")

# How many non-blank lines after a header may precede `arrow-up` (link, fedilink, language, slack).
_MAX_LINES_BEFORE_VOTES = 6
# Lines before `arrow-up`, then arrow-up, count, arrow-down, count, `·`, edit-2, age.
_MAX_META_LINES = _MAX_LINES_BEFORE_VOTES + 8
_MAX_QUOTE = 40


class ThreadParseError(ValueError):
    """The text is not a Lemmy thread, or a comment's metadata is malformed.

    The message is a single line; ``line`` is the 1-based line number it refers to, if any.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Comment:
    """One comment. ``source[start:end] == text`` for the string given to :func:`parse_thread`.

    ``text`` runs from the body's first to its last non-space character, with inner newlines
    (``\r\n`` included) and indentation verbatim; an empty body has ``start == end`` just
    after the metadata. ``parent`` is None for depth 0 and for comments whose parent is not
    part of the paste.
    """

    index: int
    author: str
    is_op: bool
    upvotes: int
    downvotes: int
    edited: bool
    age: str
    depth: int
    parent: int | None
    start: int
    end: int
    text: str

    @property
    def score(self) -> int:
        return self.upvotes - self.downvotes

    def paragraphs(self) -> list[tuple[int, int]]:
        """Absolute ``[start, end)`` spans of the body's paragraphs in the source text.

        Paragraphs are separated by whitespace-only lines; each span starts at the paragraph's
        first non-space character and ends after its last one.
        """
        spans: list[tuple[int, int]] = []
        para_start: int | None = None
        para_end = 0
        pos = 0
        for line in self.text.split("\n"):
            if line.strip():
                if para_start is None:
                    para_start = pos + len(line) - len(line.lstrip())
                para_end = pos + len(line.rstrip())
            elif para_start is not None:
                spans.append((self.start + para_start, self.start + para_end))
                para_start = None
            pos += len(line) + 1
        if para_start is not None:
            spans.append((self.start + para_start, self.start + para_end))
        return spans


@dataclass(frozen=True)
class Thread:
    """The comments in order, and the span of the (stripped) text before the first one."""

    comments: list[Comment]
    preamble: tuple[int, int] | None


@dataclass(frozen=True)
class _Line:
    number: int  # 1-based
    start: int  # offset of the first character
    content: str  # without the line terminator (`\n` or `\r\n`)
    next: int  # offset just after the line terminator (== len(text) on the last line)

    @property
    def blank(self) -> bool:
        return not self.content.strip()

    @property
    def word(self) -> str:
        return self.content.strip()


@dataclass(frozen=True)
class _Header:
    line: int  # index into the line list
    indent: int
    author: str
    is_op: bool


def _split_lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    pos = 0
    number = 1
    size = len(text)
    while pos < size:
        nl = text.find("\n", pos)
        stop = size if nl < 0 else nl
        nxt = size if nl < 0 else nl + 1
        content = text[pos:stop]
        if content.endswith("\r"):
            content = content[:-1]
        lines.append(_Line(number, pos, content, nxt))
        pos = nxt
        number += 1
    return lines


def _match_header(line: _Line, index: int) -> _Header | None:
    m = _HEADER_RE.fullmatch(line.content)
    if m is None:
        return None
    return _Header(index, len(m.group("indent")), m.group("author"), m.group("op") is not None)


def _meta_run(lines: list[_Line], header: int) -> list[int]:
    """Indices of the non-blank lines directly after a header line (stopping at a header).

    Capped at a length that fits the longest possible metadata; anything after it is body text.
    """
    run: list[int] = []
    i = header + 1
    limit = min(len(lines), i + _MAX_META_LINES)
    while i < limit and not lines[i].blank and _match_header(lines[i], i) is None:
        run.append(i)
        i += 1
    return run


def _votes_at(lines: list[_Line], run: list[int]) -> int | None:
    """Position in ``run`` of the ``arrow-up`` line, if the run looks like comment metadata."""
    for pos, i in enumerate(run[: _MAX_LINES_BEFORE_VOTES + 1]):
        if lines[i].word == "arrow-up":
            return pos
    return None


def _quote(s: str) -> str:
    if len(s) > _MAX_QUOTE:
        s = s[: _MAX_QUOTE - 1] + "…"
    return repr(s)


@dataclass(frozen=True)
class _Meta:
    upvotes: int
    downvotes: int
    edited: bool
    age: str
    body_offset: int  # offset just after the metadata


def _parse_meta(lines: list[_Line], header: _Header, run: list[int], votes: int) -> _Meta:
    seq = run[votes:]
    where = lines[header.line].number

    def expect_word(k: int, word: str, after: str) -> None:
        if k >= len(seq):
            raise ThreadParseError(
                f"line {where}: metadata of comment by {header.author} ends after {after!r}, "
                f"expected {word!r}",
                where,
            )
        line = lines[seq[k]]
        if line.word != word:
            raise ThreadParseError(
                f"line {line.number}: expected {word!r} after {after!r} in metadata of comment by "
                f"{header.author}, got {_quote(line.word)}",
                line.number,
            )

    def expect_int(k: int, what: str, after: str) -> int:
        if k >= len(seq):
            raise ThreadParseError(
                f"line {where}: metadata of comment by {header.author} ends after {after!r}, "
                f"expected the {what} count",
                where,
            )
        line = lines[seq[k]]
        if _INT_RE.fullmatch(line.word) is None:
            raise ThreadParseError(
                f"line {line.number}: {what} count of comment by {header.author} is not a "
                f"plain integer: {_quote(line.word)}",
                line.number,
            )
        return int(line.word)

    upvotes = expect_int(1, "upvote", "arrow-up")
    expect_word(2, "arrow-down", "upvote count")
    downvotes = expect_int(3, "downvote", "arrow-down")
    k = 4
    if k < len(seq) and lines[seq[k]].word == "·":
        k += 1
    edited = k < len(seq) and lines[seq[k]].word == "edit-2"
    if edited:
        k += 1
    age = ""
    if k < len(seq):
        age = lines[seq[k]].word
        k += 1
    last = lines[seq[k - 1]]
    return _Meta(upvotes, downvotes, edited, age, last.next)


def _find_headers(lines: list[_Line]) -> list[tuple[_Header, list[int], int]]:
    found: list[tuple[_Header, list[int], int]] = []
    for i, line in enumerate(lines):
        if "•" not in line.content:
            continue
        header = _match_header(line, i)
        if header is None:
            continue
        run = _meta_run(lines, i)
        votes = _votes_at(lines, run)
        if votes is not None:
            found.append((header, run, votes))
    return found


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    region = text[start:end]
    stripped = region.lstrip()
    if not stripped:
        return start, start
    lead = len(region) - len(stripped)
    return start + lead, start + lead + len(stripped.rstrip())


def looks_like_thread(text: str) -> bool:
    """Cheap sniff: is there a ``• name@instance`` header followed by vote metadata?

    Uses the same header rules as :func:`parse_thread`, so when this is True the parser finds
    at least one comment (though it may still reject malformed metadata).
    """
    if "arrow-up" not in text or "arrow-down" not in text or "•" not in text:
        return False
    lines = _split_lines(text)
    for i, line in enumerate(lines):
        if "•" not in line.content or _match_header(line, i) is None:
            continue
        run = _meta_run(lines, i)
        votes = _votes_at(lines, run)
        if votes is not None and any(lines[j].word == "arrow-down" for j in run[votes:]):
            return True
    return False


def parse_thread(text: str) -> Thread:
    """Parse a thread pasted from the Lemmy web UI.

    Raises :class:`ThreadParseError` (and nothing else) when no comment header is found or a
    comment's vote metadata is malformed.
    """
    lines = _split_lines(text)
    headers = _find_headers(lines)
    if not headers:
        raise ThreadParseError(
            f"no Lemmy comment found in {len(lines)} line(s): expected a '• name@instance' line "
            "followed by 'arrow-up', <count>, 'arrow-down', <count>"
        )
    metas = [_parse_meta(lines, h, run, votes) for h, run, votes in headers]
    base = min(h.indent for h, _, _ in headers)
    # A body runs up to the line of the next header, the last one to the end of the text.
    body_ends = [lines[h.line].start for h, _, _ in headers[1:]] + [len(text)]

    comments: list[Comment] = []
    open_: list[Comment] = []  # the current chain of ancestors, shallowest first
    for index, ((header, _, _), meta) in enumerate(zip(headers, metas, strict=True)):
        depth = (header.indent - base) // 2
        while open_ and open_[-1].depth >= depth:
            open_.pop()
        parent = open_[-1].index if open_ and open_[-1].depth == depth - 1 else None
        body_end = body_ends[index]
        start, end = _strip_span(text, meta.body_offset, max(body_end, meta.body_offset))
        comment = Comment(
            index=index,
            author=header.author,
            is_op=header.is_op,
            upvotes=meta.upvotes,
            downvotes=meta.downvotes,
            edited=meta.edited,
            age=meta.age,
            depth=depth,
            parent=parent,
            start=start,
            end=end,
            text=text[start:end],
        )
        comments.append(comment)
        open_.append(comment)

    first = lines[headers[0][0].line].start
    pre_from = 1 if text.startswith("\ufeff") else 0
    pre_start, pre_end = _strip_span(text, pre_from, max(first, pre_from))
    preamble = (pre_start, pre_end) if pre_end > pre_start else None
    return Thread(comments=comments, preamble=preamble)


def comment_line(meta: dict[str, str | int | float | bool]) -> str:
    """A comment's metadata as one line, stored as its chunks' context (retrieval reads it, the
    verifier accepts claims that restate it): "cyd@lemmy.world, comment replying to 0x815@feddit.de,
    3 upvotes, 12 downvotes, edited"."""
    words = [f"{meta['author']} (original poster, OP)" if meta.get("is_op") else str(meta["author"])]
    parent = meta.get("parent_author")
    words.append(f"comment replying to {parent}" if parent else "top-level comment")
    words.append(f"{meta.get('upvotes', 0)} upvotes, {meta.get('downvotes', 0)} downvotes")
    if meta.get("edited"):
        words.append("edited")
    return ", ".join(words)
