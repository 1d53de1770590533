"""Rendering helpers of the chat page. Corpus text is data: it is escaped before any Markdown rendering
(no HTML, links, images or directives can come from a document), and never passed as HTML (the only
HTML is the cards' fixed anchors)."""

from __future__ import annotations

import json
import re
import string
from typing import Any

import streamlit as st

from rag.types import Answer, Citation, Passage

_PUNCTUATION = set(string.punctuation)
WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"\\@|\\:(?=\\/\\/)|(?<![^\W_])www\\\.", re.IGNORECASE)


def escape_md(text: str) -> str:
    """Text that Streamlit's Markdown shows literally: every ASCII punctuation character is
    backslash-escaped and indentation (which would start a code block) is removed."""
    lines = [line.strip() for line in text.replace("\r", "").split("\n")]
    flat = "\n".join(lines)
    flat = re.sub(r"\n{3,}", "\n\n", flat)
    escaped = "".join("\\" + ch if ch in _PUNCTUATION else ch for ch in flat)
    # GFM links bare addresses (bob@example.org, https://…, www.…) in the parsed text, escapes or not:
    # an invisible word joiner keeps a document's address from completing the pattern
    escaped = _AUTOLINK.sub(lambda m: m[0][:-2] + WORD_JOINER + m[0][-2:], escaped)
    return escaped.replace("\n", "  \n")


def highlighted(text: str, start: int, end: int, more: tuple[tuple[int, int], ...] = ()) -> str:
    """Markdown of `text` with `text[start:end]` (and every span of `more`) highlighted."""
    spans = sorted({(s, e) for s, e in ((start, end), *more) if 0 <= s < e <= len(text)})
    if not spans:
        return escape_md(text)
    out: list[str] = []
    pos = 0
    for s, e in spans:
        if s < pos:
            continue  # overlapping spans: the first one shows
        before = text[pos:s]
        marked = " ".join(
            f":orange-background[**{escape_md(part)}**]" for part in text[s:e].split("\n") if part.strip()
        )
        space = " " if before and not before.endswith(chr(10)) else ""
        lead = " " if out else ""  # after an earlier highlight
        out.append(f"{lead}{escape_md(before)}{space}{marked}" if before.strip() or not out else f" {marked}")
        pos = e
    after = text[pos:]
    return "".join(out) + (" " if after else "") + escape_md(after)


Block = dict[
    str, Any
]  # an entry of Document.outline(): start, end, kind, level (+ a comment's author, votes)


def blocks_of(text: str, outline: list[Block]) -> list[Block]:
    """The document's blocks; a catalog row written before outlines were kept falls back to paragraphs."""
    if outline:
        return outline
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S(?:.*?\S)?(?=\n\s*\n|\s*\Z)", text, re.DOTALL)]
    return [{"start": a, "end": b, "kind": "paragraph"} for a, b in spans]


def quoted_blocks(blocks: list[Block], start: int, end: int) -> list[Block]:
    """The blocks holding text[start:end], after the nearest heading above them (their context)."""
    hit = [i for i, b in enumerate(blocks) if b["start"] < end and b["end"] > start]
    if not hit:
        return []
    heading = next((i for i in range(hit[0] - 1, -1, -1) if blocks[i]["kind"] == "heading"), None)
    return ([blocks[heading]] if heading is not None else []) + [blocks[i] for i in hit]


def comment_header(block: Block) -> str:
    """'**name@instance** · 26▲ 2▼ · original poster · reply to X · 5 months ago' (escaped)."""
    parts = [
        f"**{escape_md(str(block['author']))}**",
        f"{block.get('upvotes', 0)}▲ {block.get('downvotes', 0)}▼",
    ]
    if block.get("op"):
        parts.append("original poster")
    if block.get("reply_to"):
        parts.append(f"reply to {escape_md(str(block['reply_to']))}")
    parts += [escape_md(str(block[k])) for k in ("age",) if block.get(k)]
    return " · ".join(parts)


def formatted(text: str, blocks: list[Block], start: int, end: int) -> str:
    """Markdown of `blocks` of `text`, formatted by kind (headings, list items, code, a thread's comments
    with author and votes, indented by reply depth), with text[start:end] highlighted. Document text is
    escaped or fenced as code: no markup, HTML or link of the document's own is ever rendered."""
    out = []
    for b in blocks:
        a, z = int(b["start"]), int(b["end"])
        piece = text[a:z]
        quoted = a < end and z > start
        body = highlighted(piece, max(start - a, 0), min(end, z) - a) if quoted else escape_md(piece)
        kind = b["kind"]
        if kind == "heading":
            out.append("#" * min(int(b.get("level") or 1) + 2, 6) + " " + body)
        elif kind == "item":
            out.append("- " + body)
        elif kind == "code" and not quoted:
            fence = "`" * (max((len(r) for r in re.findall(r"`+", piece)), default=0) + 3)
            out.append(f"{fence}text\n{piece}\n{fence}")
        elif kind == "comment":
            depth = min(int(b.get("level") or 0), 6)
            lines = f"{comment_header(b)}  \n{body}".split("\n")
            out.append("\n".join(("> " * depth + line).rstrip() for line in lines))
        else:
            out.append(body)
    return "\n\n".join(out)


def who(passage: Passage) -> str:
    """'cyd@lemmy.world · 3▲ 12▼ · reply to X' for a thread comment; the publisher for an article."""
    meta = passage.metadata
    if passage.kind != "comment":
        return str(meta.get("meta_publisher", ""))
    parts = [passage.author, f"{meta.get('upvotes', 0)}▲ {meta.get('downvotes', 0)}▼"]
    if meta.get("is_op"):
        parts.append("original poster")
    if meta.get("parent_author"):
        parts.append(f"reply to {meta['parent_author']}")
    return " · ".join(parts)


def where(passage: Passage) -> str:
    """'Title › Section', and for a thread comment or an article who wrote or published it."""
    place = f"{passage.title} › {passage.section}" if passage.section else passage.title
    details = [d for d in ("comment" if passage.kind == "comment" else "", who(passage)) if d]
    return f"{place} — {' · '.join(details)}" if details else place


def card_label(citations: list[Citation]) -> str:
    """'[1] [3] Title › Section': one card per place in a document, with every marker that cites it."""
    markers = " ".join(f"[{c.marker}]" for c in citations)
    return escape_md(f"{markers} {where(citations[0].passage)}")  # labels render Markdown: a title is data


def snippet(text: str, limit: int = 90) -> str:
    """The start of a passage, cut at a word."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def cards(citations: list[Citation]) -> list[list[Citation]]:
    """The citations grouped by the place they quote (the same document and section), in marker order."""
    groups: dict[tuple[str, str, str], list[Citation]] = {}
    for c in citations:
        p = c.passage
        place = (str(p.metadata.get("path", p.source)), p.section, p.author if p.kind == "comment" else "")
        groups.setdefault(place, []).append(c)
    return list(groups.values())


def document_span(citation: Citation) -> tuple[str, int, int]:
    """The cited document's path and the quote's span in the whole document."""
    p = citation.passage
    return str(p.metadata.get("path", "")), p.start + citation.start, p.start + citation.end


def card_id(key: str, marker: int) -> str:
    return f"source-{key}-{marker}"


def answer_markdown(answer: Answer, key: str) -> str:
    """The answer text, escaped, with each [n] marker a link to its source card."""
    return re.sub(
        r"\\\[(\d+)\\\]", lambda m: f"[**[{m[1]}]**](#{card_id(key, int(m[1]))})", escape_md(answer.text)
    )


def to_markdown(messages: list[dict[str, Any]]) -> str:
    """The conversation as Markdown, with each answer's sources."""
    out = ["# Conversation", ""]
    for m in messages:
        if m["role"] == "user":
            out += [f"**Question:** {m['content']}", ""]
            continue
        answer: Answer | None = m.get("answer")
        out += [f"**Answer:** {m['content']}", ""]
        if answer is None:
            continue
        out += [f"- {source_line(c)}" for c in answer.citations]
        if answer.refused and answer.related:
            out.append("- Related passages: " + "; ".join(p.source for p in answer.related))
        out.append("")
    return "\n".join(out)


def source_line(c: Citation) -> str:
    """'[1] Title (source, author): “quote” … “quote”'."""
    author = f", {c.passage.author}" if c.passage.author else ""
    quotes = " … ".join(f"“{q}”" for q in c.quotes)
    return f"[{c.marker}] {c.passage.title} ({c.passage.source}{author}): {quotes}"


def copy_text(message: dict[str, Any]) -> str:
    """What "Copy" puts on the clipboard: the answer, then its sources with their quotes."""
    answer: Answer | None = message.get("answer")
    if answer is None or not answer.citations:
        return str(message["content"])
    return "\n".join([answer.text, "", "Sources:", *(source_line(c) for c in answer.citations)])


def to_json(messages: list[dict[str, Any]]) -> str:
    turns = []
    for m in messages:
        answer: Answer | None = m.get("answer")
        turns.append(
            {"role": m["role"], "content": m["content"], **({"answer": answer.to_json()} if answer else {})}
        )
    return json.dumps({"conversation": turns}, ensure_ascii=False, indent=2)


def render_passages(passages: list[Passage], key: str) -> None:
    """Passages as cards labelled with where they are and how they start (two from one place: one card)."""
    shown: set[str] = set()
    for p in passages:
        label = f"{where(p)}: “{snippet(p.text)}”"
        if label in shown:
            continue
        shown.add(label)
        with st.expander(escape_md(label), expanded=False):
            st.markdown(escape_md(p.text), help=None)
            st.caption(escape_md(p.source))


def render_sources(answer: Answer, key: str) -> None:
    """Source cards under an answer (or the related passages of a refusal)."""
    if answer.refused:
        if answer.related:
            st.markdown("**Related passages** (the closest the documents come; not an answer)")
            render_passages(answer.related, key)
        return
    for group in cards(answer.citations):
        # the targets of the answer's [n] links (our own fixed markup, no document text)
        anchors = "".join(f'<span id="{card_id(key, c.marker)}"></span>' for c in group)
        st.markdown(anchors, unsafe_allow_html=True)
        with st.expander(card_label(group), expanded=False):
            for c in group:
                st.markdown(highlighted(c.passage.text, c.start, c.end, c.spans))
            st.caption(escape_md(group[0].passage.source))
            if st.button("Open the document", key=f"{key}-open-{group[0].marker}"):
                st.session_state["open_document"] = document_span(group[0])


# ---- past conversations, kept as JSON (in the browser) ----

PENDING = "\x00pending"  # the browser has not answered yet
MAX_CONVERSATIONS = 20
MAX_STORED_CHARS = 2_000_000  # local storage holds about 5 MB per site


def browser(save: str | None, copies: dict[str, str]) -> str | None:
    """The page's browser side (`ui/browser`): what this browser keeps of the page (its past conversations,
    JSON), writing `save` first when given, PENDING until the browser has answered (the first run of a
    visit); it also opens the card an answer's [n] marker links to, and puts `copies[KEY]` on the clipboard
    when the button with key `copy-KEY` is pressed."""
    import streamlit.components.v1 as components

    global _BROWSER
    if _BROWSER is None:
        from pathlib import Path

        _BROWSER = components.declare_component("browser", path=str(Path(__file__).parent / "browser"))
    value = _BROWSER(name="conversations", save=save, copies=copies, default=PENDING, key="browser")
    return value if value is None or isinstance(value, str) else None


_BROWSER: Any = None


def keep(conversations: dict[str, dict[str, Any]]) -> str:
    """The conversations as the browser keeps them: the newest `MAX_CONVERSATIONS`, within `MAX_STORED_CHARS`."""
    newest = sorted(conversations.items(), key=lambda kv: -float(kv[1].get("updated", 0)))[:MAX_CONVERSATIONS]
    while newest:
        text = json.dumps(dict(newest), ensure_ascii=False)
        if len(text) <= MAX_STORED_CHARS:
            return text
        newest = newest[:-1]
    return "{}"


def _passage_json(p: Passage) -> dict[str, Any]:
    return {"id": p.id, "text": p.text, "metadata": p.metadata, "score": p.score}


def _passage(data: dict[str, Any]) -> Passage:
    return Passage(
        str(data["id"]), str(data["text"]), dict(data.get("metadata") or {}), float(data.get("score", 0))
    )


def _citation_json(c: Citation) -> dict[str, Any]:
    spans = [list(span) for span in c.spans]
    return {"marker": c.marker, "quote": c.quote, "start": c.start, "end": c.end, "spans": spans,
            "passage": _passage_json(c.passage)}  # fmt: skip


def messages_json(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A conversation's messages as JSON: each answer with what its cards show (passages, quotes, spans)."""
    out = []
    for m in messages:
        item: dict[str, Any] = {"role": m["role"], "content": m["content"]}
        if m.get("stopped"):
            item["stopped"] = True
        answer: Answer | None = m.get("answer")
        if answer is not None:
            item["answer"] = {
                "question": answer.question,
                "text": answer.text,
                "refused": answer.refused,
                "citations": [_citation_json(c) for c in answer.citations],
                "related": [_passage_json(p) for p in answer.related],
            }
        out.append(item)
    return out


def messages_from_json(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages `messages_json` wrote, with their answers again."""
    out = []
    for item in items:
        message: dict[str, Any] = {"role": str(item["role"]), "content": str(item["content"])}
        if item.get("stopped"):
            message["stopped"] = True
        data = item.get("answer")
        if isinstance(data, dict):
            citations = [
                Citation(int(c["marker"]), _passage(c["passage"]), str(c["quote"]), int(c["start"]),
                         int(c["end"]), tuple((int(a), int(b)) for a, b in c.get("spans") or ()))
                for c in data.get("citations", [])
            ]  # fmt: skip
            message["answer"] = Answer(
                question=str(data.get("question", "")),
                text=str(data.get("text", "")),
                citations=citations,
                refused=bool(data.get("refused")),
                related=[_passage(p) for p in data.get("related", [])],
            )
        out.append(message)
    return out
