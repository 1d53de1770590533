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


def escape_md(text: str) -> str:
    """Text that Streamlit's Markdown shows literally: every ASCII punctuation character is
    backslash-escaped and indentation (which would start a code block) is removed."""
    lines = [line.strip() for line in text.replace("\r", "").split("\n")]
    flat = "\n".join(lines)
    flat = re.sub(r"\n{3,}", "\n\n", flat)
    escaped = "".join("\\" + ch if ch in _PUNCTUATION else ch for ch in flat)
    return escaped.replace("\n\n", "\n\n").replace("\n", "  \n")


def highlighted(text: str, start: int, end: int, more: tuple[tuple[int, int], ...] = ()) -> str:
    """Markdown of `text` with `text[start:end]` (and every span of `more`) highlighted."""
    spans = sorted({(s, e) for s, e in ((start, end), *more) if 0 <= s < e <= len(text)})
    if not spans:
        return escape_md(text)
    out, pos = [], 0
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


def around(text: str, start: int, end: int, margin: int = 600) -> tuple[int, int]:
    """The span of the paragraphs holding text[start:end], widened by at most `margin` characters a side."""
    a = text.rfind("\n\n", max(0, start - margin), start)
    b = text.find("\n\n", end, end + margin)
    return (a + 2 if a >= 0 else max(0, start - margin)), (b if b >= 0 else min(len(text), end + margin))


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


def card_label(citation: Citation) -> str:
    p = citation.passage
    details = [p.kind or "passage", who(p), f"passage {int(p.metadata.get('position', 0)) + 1}"]
    where = f"{p.title} › {p.section}" if p.section else p.title
    return f"[{citation.marker}] {where} — " + " · ".join(d for d in details if d)


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
        for c in answer.citations:
            author = f", {c.passage.author}" if c.passage.author else ""
            quotes = " … ".join(f"“{q}”" for q in c.quotes)
            out.append(f"- [{c.marker}] {c.passage.title} ({c.passage.source}{author}): {quotes}")
        if answer.refused and answer.related:
            out.append("- Related passages: " + "; ".join(p.source for p in answer.related))
        out.append("")
    return "\n".join(out)


def to_json(messages: list[dict[str, Any]]) -> str:
    turns = []
    for m in messages:
        answer: Answer | None = m.get("answer")
        turns.append(
            {"role": m["role"], "content": m["content"], **({"answer": answer.to_json()} if answer else {})}
        )
    return json.dumps({"conversation": turns}, ensure_ascii=False, indent=2)


def render_passages(passages: list[Passage], key: str) -> None:
    for p in passages:
        label = f"{p.title} — {who(p)}" if who(p) else p.title
        with st.expander(label, expanded=False):
            st.markdown(escape_md(p.text), help=None)
            st.caption(f"{p.source} · {p.kind}")


def render_sources(answer: Answer, key: str) -> None:
    """Source cards under an answer (or the related passages of a refusal)."""
    if answer.refused:
        if answer.related:
            st.markdown("**Related passages** (the closest the documents come; not an answer)")
            render_passages(answer.related, key)
        return
    for c in answer.citations:
        # the target of the answer's [n] link (our own fixed markup, no document text)
        st.markdown(f'<span id="{card_id(key, c.marker)}"></span>', unsafe_allow_html=True)
        with st.expander(card_label(c), expanded=False):
            st.markdown(highlighted(c.passage.text, c.start, c.end, c.spans))
            st.caption(f"{c.passage.source} · characters {document_span(c)[1]}–{document_span(c)[2]}")
            if st.button("Open the document", key=f"{key}-open-{c.marker}"):
                st.session_state["open_document"] = document_span(c)
