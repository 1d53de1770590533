"""Document structure: Markdown, HTML and plain text rendered to plain text plus typed blocks.

A loader's text is what chunks, sentences and quotes index into, so markup must be gone from it: link
targets, image syntax, emphasis markers, code-span backticks, heading marks and table pipes never reach a
quote. Each rendered character remembers the offset of the source character it came from (`offsets`), so
any span of the text maps back to the file.

Blocks are the units of a page: a heading (context for what follows, never an answer sentence), a
paragraph, a list item, a table row (read with its header: "Plan: Pro; Price: $20"), a code block. Blocks
are separated by a blank line in the rendered text, so every block is its own paragraph.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

BlockKind = str  # heading | paragraph | item | row | code


@dataclass(frozen=True)
class Block:
    start: int  # span in the rendered text
    end: int
    kind: BlockKind
    level: int = 0  # heading level (1 = the page title's level)


@dataclass
class Rendered:
    """Plain text being built, with the source offset of each of its characters."""

    text: list[str] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    def add(self, chars: str, offsets: list[int]) -> None:
        self.text.append(chars)
        self.offsets.extend(offsets)

    def block(self, pieces: list[tuple[str, int]], kind: BlockKind, level: int = 0) -> None:
        """Append a block from (character, source offset) pairs, whitespace collapsed and trimmed."""
        chars: list[tuple[str, int]] = []
        for ch, at in pieces:
            if ch.isspace() and kind != "code":
                if chars and chars[-1][0] != " ":
                    chars.append((" ", at))
                continue
            chars.append((ch, at))
        while chars and chars[-1][0].isspace():
            chars.pop()
        while chars and chars[0][0].isspace():
            chars.pop(0)
        if not chars or not any(c.isalnum() for c, _ in chars):
            return
        if self.offsets:
            last = self.offsets[-1]
            self.add("\n\n", [last, last])
        start = len(self.offsets)
        self.add("".join(c for c, _ in chars), [at for _, at in chars])
        self.blocks.append(Block(start, len(self.offsets), kind, level))

    @property
    def string(self) -> str:
        return "".join(self.text)


# --- inline Markdown -------------------------------------------------------------------------------------

_INLINE = re.compile(
    r"(?P<escape>\\(?P<escaped>[!-/:-@\[-`{-~]))"
    r"|(?P<code>(?P<ticks>`+)(?P<code_text>.+?)(?P=ticks))"
    r"|(?P<image>!\[[^\]]*\](?:\([^)]*\)|\[[^\]]*\]))"
    r"|(?P<link>\[(?P<link_text>[^\]]+)\](?:\((?:[^()\s]|\([^)]*\))*(?:\s+[\"'][^\"']*[\"'])?\s*\)|\[[^\]]*\]))"
    r"|(?P<autolink><(?P<url>(?:https?|mailto):[^>\s]+)>)"
    r"|(?P<comment><!--.*?-->)"
    r"|(?P<tag></?[A-Za-z][\w-]*(?:\s[^<>]*)?/?>)"
    r"|(?P<template>\{%.*?%\}|\{\{.*?\}\})"
    r"|(?P<footnote>\[\^[^\]]+\])"
    r"|(?P<attrs>\{[#.][^}]*\}\s*$)"
    r"|(?P<strong>\*{2,3}|_{2,3}|~~)"
    r"|(?P<star>(?<![\w*\\])\*(?=[^\s*])|(?<=[^\s*\\])\*(?![\w*]))"
    r"|(?P<underscore>(?<![\w\\])_(?=[^\s_])|(?<=[^\s_\\])_(?!\w))"
)


def inline(source: str, start: int, end: int) -> list[tuple[str, int]]:
    """The characters of `source[start:end]` with inline Markdown removed, each with its source offset."""
    out: list[tuple[str, int]] = []
    pos = start
    for match in _INLINE.finditer(source, start, end):
        out.extend((source[i], i) for i in range(pos, match.start()))
        pos = match.end()
        kind = match.lastgroup
        if match.group("escape"):
            out.append((match.group("escaped"), match.start("escaped")))
        elif match.group("code"):
            s, e = match.span("code_text")
            if e - s >= 2 and source[s] == " " and source[e - 1] == " ":
                s, e = s + 1, e - 1
            out.extend((source[i], i) for i in range(s, e))
        elif match.group("link"):
            out.extend(inline(source, *match.span("link_text")))
        elif match.group("autolink"):
            out.extend((source[i], i) for i in range(*match.span("url")))
        elif kind == "tag" and re.match(r"</?(br|p|div|li|tr)\b", match.group(0), re.I):
            out.append((" ", match.start()))
    out.extend((source[i], i) for i in range(pos, end))
    return out


# --- block Markdown --------------------------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+|$)")
_ATX_CLOSE = re.compile(r"[ \t]+#+[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_ITEM = re.compile(r"^([ \t]*)(?:[-*+•●▪◦‣∙·]|\d{1,9}[.)])(?:[ \t]+(?:\[[ xX]\][ \t]+)?|$)")
_QUOTE = re.compile(r"^ {0,3}>[ \t]?")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]^]+\]:\s*\S+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(?:\|\s*:?-{1,}:?\s*)*\|?\s*$")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
# mkdocs admonitions (!!! note "Title", ??? tip) and content tabs (=== "pip"): the title is text
_ADMONITION = re.compile(
    r"^ {0,3}(?:!!!|\?\?\?\+?|===\+?)[ \t]*(?:[\w-]+)?(?:[ \t]*(?P<title>\"[^\"]*\"))?[ \t]*$"
)


_HTML_TABLE = re.compile(r"^ {0,3}<table\b", re.I)
_HTML_TABLE_END = re.compile(r"</table\s*>", re.I)
_HTML_ROW = re.compile(r"<tr\b[^>]*>(?P<body>.*?)(?=</tr\s*>|<tr\b|</table\b)", re.I | re.S)
_HTML_CELL = re.compile(r"<(?P<kind>t[dh])\b[^>]*>(?P<body>.*?)(?=</t[dh]\s*>|<t[dh]\b|$)", re.I | re.S)


def _html_table_rows(source: str, start: int, end: int) -> list[list[tuple[str, int]]]:
    """The rows of the HTML table in `source[start:end]`, each cell read with its column's header ("Years:
    More than 5; Technical: $70k"), as (character, source offset) pairs; the header row itself is not a row."""
    header: list[list[tuple[str, int]]] = []
    rows: list[list[tuple[str, int]]] = []
    for row in _HTML_ROW.finditer(source, start, end):
        cells = list(_HTML_CELL.finditer(source, row.start("body"), row.end("body")))
        texts = [inline(source, *cell.span("body")) for cell in cells]
        if not header and not rows and cells and all(c.group("kind").lower() == "th" for c in cells):
            header = texts
            continue
        pieces: list[tuple[str, int]] = []
        for n, text in enumerate(texts):
            if not "".join(c for c, _ in text).strip():
                continue
            at = text[0][1]
            if pieces:
                pieces.extend([(";", at), (" ", at)])
            if n < len(header) and "".join(c for c, _ in header[n]).strip():
                pieces.extend(header[n])
                pieces.extend([(":", at), (" ", at)])
            pieces.extend(text)
        rows.append(pieces)
    return rows


def _lines(text: str, start: int) -> list[tuple[int, int]]:
    """(start, end) of each line of text[start:], without the newline."""
    spans = []
    pos = start
    while pos < len(text):
        nl = text.find("\n", pos)
        nl = len(text) if nl < 0 else nl
        spans.append((pos, nl))
        pos = nl + 1
    return spans


def _cells(source: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the cells of a table row (pipes escaped with a backslash are text)."""
    line = source[start:end]
    s = start + (len(line) - len(line.lstrip()))
    e = start + len(line.rstrip())
    if s < e and source[s] == "|":
        s += 1
    if e > s and source[e - 1] == "|" and source[e - 2] != "\\":
        e -= 1
    cells, pos = [], s
    for i in range(s, e):
        if source[i] == "|" and source[i - 1] != "\\":
            cells.append((pos, i))
            pos = i + 1
    cells.append((pos, e))
    trimmed = []
    for a, b in cells:
        while a < b and source[a].isspace():
            a += 1
        while b > a and source[b - 1].isspace():
            b -= 1
        trimmed.append((a, b))
    return trimmed


def render_markdown(source: str, body_start: int = 0) -> Rendered:
    """Render Markdown (from `body_start`, after any front matter) to plain text and blocks."""
    # HTML comments span lines: blank them out (same length, so offsets hold).
    source = _HTML_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)
    out = Rendered()
    lines = _lines(source, body_start)
    paragraph: list[tuple[int, int]] = []
    item: tuple[int, list[tuple[int, int]]] | None = None  # (indent, line spans)

    def lines_inline(spans: list[tuple[int, int]]) -> list[tuple[str, int]]:
        """Inline Markdown of a block's lines: in one pass when they are contiguous in the source, so a
        link or emphasis that wraps onto the next line is still recognised."""
        if all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans)):
            return inline(source, spans[0][0], spans[-1][1])
        return [p for s, e in spans for p in [*inline(source, s, e), ("\n", e)]]

    def flush() -> None:
        nonlocal paragraph, item
        if paragraph:
            out.block(lines_inline(paragraph), "paragraph")
        if item:
            out.block(lines_inline(item[1]), "item")
        paragraph, item = [], None

    i = 0
    while i < len(lines):
        s, e = lines[i]
        line = source[s:e]
        quote = _QUOTE.match(line)
        if quote:  # a block quote's content is read as text
            s += quote.end()
            line = source[s:e]
        if not line.strip():
            flush()
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker = fence.group(1)
            j = i + 1
            while j < len(lines) and not source[lines[j][0] : lines[j][1]].lstrip().startswith(marker):
                j += 1
            if j > i + 1:
                pieces = [
                    (source[k], k) for a, b in lines[i + 1 : j] for k in range(a, b + 1) if k < len(source)
                ]
                while pieces and pieces[-1][0] == "\n":
                    pieces.pop()
                out.block(pieces, "code")
            i = j + 1
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            close = _ATX_CLOSE.search(line)
            end = s + (close.start() if close else len(line.rstrip()))
            out.block(inline(source, s + atx.end(), end), "heading", len(atx.group(1)))
            i += 1
            continue
        if paragraph and not item and _SETEXT.match(line) and len(paragraph) == 1:
            level = 1 if line.strip().startswith("=") else 2
            (ps, pe), paragraph = paragraph[0], []
            out.block(inline(source, ps, pe), "heading", level)
            i += 1
            continue
        if _RULE.match(line) or _REFERENCE.match(line):
            flush()
            i += 1
            continue
        admonition = _ADMONITION.match(line)
        if admonition:
            flush()
            if admonition.group("title"):
                ts, te = admonition.span("title")
                out.block(inline(source, s + ts + 1, s + te - 1), "paragraph")
            i += 1
            continue
        if _HTML_TABLE.match(line):  # an HTML table in Markdown: read row by row, like a Markdown table
            flush()
            j = i
            while j < len(lines) - 1 and not _HTML_TABLE_END.search(source[slice(*lines[j])]):
                j += 1
            for pieces in _html_table_rows(source, s, lines[j][1]):
                out.block(pieces, "row")
            i = j + 1
            continue
        if "|" in line and i + 1 < len(lines) and _TABLE_RULE.match(source[slice(*lines[i + 1])]):
            flush()
            header = [source[a:b].strip() for a, b in _cells(source, s, e)]
            header_cells = _cells(source, s, e)
            j = i + 2
            while j < len(lines) and "|" in source[slice(*lines[j])] and source[slice(*lines[j])].strip():
                row: list[tuple[str, int]] = []
                for n, (a, b) in enumerate(_cells(source, *lines[j])):
                    cell = inline(source, a, b)
                    if not "".join(c for c, _ in cell).strip():
                        continue
                    if row:
                        row.extend([(";", b), (" ", b)])
                    if n < len(header) and header[n]:
                        ha, hb = header_cells[n]
                        row.extend(inline(source, ha, hb))
                        row.extend([(":", ha), (" ", ha)])
                    row.extend(cell)
                out.block(row, "row")
                j += 1
            i = j
            continue
        bullet = _ITEM.match(line)
        if bullet and (not paragraph or bullet.group(1) == "" or item):
            flush()
            item = (len(bullet.group(1)), [(s + bullet.end(), e)])
            i += 1
            continue
        if item is not None:
            item[1].append((s, e))  # a continuation line of the item
        else:
            paragraph.append((s, e))
        i += 1
    flush()
    return out


# --- plain text ------------------------------------------------------------------------------------------

_TERMINAL = re.compile(r"[.!?:;,…]['\"”’)]*$")
_NUMBERED = re.compile(
    r"^(?:\d+(?:\.\d+)*\.?|[IVXLC]+\.|[A-Z]\.|§+\s*\d+[\w.]*|(?:section|article|part|chapter)\s+\w+)\s", re.I
)


def looks_like_heading(line: str, max_words: int = 12) -> bool:
    """A short line that names what follows: no sentence punctuation at its end (or a numbered label such
    as "4. Definitions."), not a list item, not all lower case."""
    words = line.split()
    if not words or len(words) > max_words or len(line) > 100:
        return False
    if _ITEM.match(line) and not _NUMBERED.match(line):
        return False
    if not any(ch.isalpha() for ch in line) or line[0].islower():
        return False
    if _TERMINAL.search(line):
        return bool(_NUMBERED.match(line)) and len(words) <= 8 and line.endswith(".")
    return True


def render_text(source: str, start: int = 0, end: int | None = None) -> Rendered:
    """Plain text: paragraphs are separated by blank lines; a one-line paragraph that looks like a heading
    (and is followed by more text) is a heading; lines of a paragraph starting with a bullet or number are
    list items."""
    end = len(source) if end is None else end
    out = Rendered()
    paragraphs = [m.span() for m in re.finditer(r"\S(?:.|\n(?![ \t]*\n))*", source[start:end])]
    for n, (ps, pe) in enumerate(paragraphs):
        ps, pe = ps + start, pe + start
        text = source[ps:pe]
        if "\n" not in text.strip() and n + 1 < len(paragraphs) and looks_like_heading(text.strip()):
            out.block([(source[k], k) for k in range(ps, pe)], "heading", 2)
            continue
        lines = _lines(source[:pe], ps)
        if _ITEM.match(source[lines[0][0] : lines[0][1]]):  # a list: each marker starts an item
            current: list[tuple[str, int]] = []
            for a, b in lines:
                bullet = _ITEM.match(source[a:b])
                if bullet and current:
                    out.block(current, "item")
                    current = []
                first = a + (bullet.end() if bullet else 0)
                current.extend([*((source[k], k) for k in range(first, b)), (" ", b)])
            out.block(current, "item")
            continue
        out.block([(source[k], k) for k in range(ps, pe)], "paragraph")
    return out


def section_paths(text: str, blocks: list[Block], title: str = "") -> list[tuple[str, ...]]:
    """For each block, the headings it sits under (outermost first); a top heading that repeats the page
    title is left out, as the title is shown anyway."""
    stack: list[tuple[int, str]] = []
    paths = []
    for block in blocks:
        if block.kind == "heading":
            while stack and stack[-1][0] >= block.level:
                stack.pop()
        paths.append(tuple(name for _, name in stack))
        if block.kind == "heading":
            name = text[block.start : block.end]
            if stack or block.level > 1 or name.strip().casefold() != title.strip().casefold():
                stack.append((block.level, name))
    return paths


# --- HTML ------------------------------------------------------------------------------------------------

_DROP = ["script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "nav", "footer",
         "aside", "form", "button"]  # fmt: skip
_PARAGRAPH_TAGS = {"p", "dd", "dt", "figcaption", "caption", "summary", "address"}
_CONTAINER_TAGS = {"div", "section", "article", "main", "header", "body", "html", "blockquote", "figure",
                   "details", "dl", "ul", "ol", "table", "thead", "tbody", "tfoot", "center"}  # fmt: skip


def render_html(soup: object) -> Rendered:
    """Blocks of a parsed HTML page (BeautifulSoup): headings, paragraphs, list items, table rows read with
    their header cells, code blocks. Navigation, footers, scripts and forms are dropped."""
    from bs4 import BeautifulSoup, NavigableString, Tag

    assert isinstance(soup, BeautifulSoup)
    for tag in soup(_DROP):
        tag.decompose()
    out = Rendered()

    def inside(child: NavigableString, node: Tag, skip: tuple[str, ...]) -> bool:
        """Whether `child` sits in a `skip` element below `node`."""
        for parent in child.parents:
            if parent is node:
                return False
            if parent.name in skip:
                return True
        return False

    def text_of(node: Tag, skip: tuple[str, ...] = ()) -> str:
        parts = [
            str(child)
            for child in node.descendants
            if type(child) is NavigableString and not (skip and inside(child, node, skip))
        ]
        return " ".join("".join(parts).split())

    def add(text: str, kind: str, level: int = 0) -> None:
        out.block([(c, 0) for c in text], kind, level)

    def walk(node: Tag) -> None:
        loose: list[str] = []
        for child in node.children:
            if isinstance(child, NavigableString):
                if type(child) is NavigableString:
                    loose.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower()
            if name in _CONTAINER_TAGS or name in _PARAGRAPH_TAGS or re.fullmatch(r"h[1-6]|li|tr|pre", name):
                add(" ".join("".join(loose).split()), "paragraph")
                loose = []
            else:  # inline element: part of the running text
                loose.append(" " + text_of(child) + " " if name == "br" else text_of(child))
                continue
            if re.fullmatch(r"h[1-6]", name):
                add(text_of(child), "heading", int(name[1]))
            elif name == "pre":
                out.block([(c, 0) for c in child.get_text().strip("\n")], "code")
            elif name == "li":
                add(text_of(child, ("ul", "ol")), "item")
                for sub in child.find_all(["ul", "ol"], recursive=False):
                    walk(sub)
            elif name == "tr":
                table = child.find_parent("table")
                found = table.find("tr") if table else None
                header_row = found if isinstance(found, Tag) else None
                header = (
                    [text_of(c) for c in header_row.find_all(["th", "td"])]
                    if header_row is not None and header_row is not child and header_row.find("th")
                    else []
                )
                cells = [text_of(c) for c in child.find_all(["td", "th"], recursive=False)]
                if child is header_row and header_row.find("th"):
                    continue
                add(
                    "; ".join(
                        f"{h}: {c}" if h else c
                        for h, c in zip([*header, *[""] * len(cells)], cells, strict=False)
                        if c
                    ),
                    "row",
                )
            elif name in _PARAGRAPH_TAGS:
                add(text_of(child), "paragraph")
            else:
                walk(child)
        add(" ".join("".join(loose).split()), "paragraph")

    walk(soup)
    return out
