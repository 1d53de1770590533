"""Document structure on pages written for these tests (a handbook page, an HTML docs page, a plain-text
policy): headings become section paths and never chunk text; list items and table rows are units (a row
read with its header); link, image, emphasis and front-matter syntax never reach the text, and every
rendered span maps back to the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.chunking import chunk_document
from ingest.loaders import load_document
from ingest.structure import render_markdown, render_text

HANDBOOK = """---
title: Working remotely
owner: People team
---

# Working remotely

Read the [remote policy](https://wiki.example.com/policy "Policy") before you **start**.

## Equipment

- A laptop is shipped to your *home address*.
- Monitors are reimbursed up to $300, see `expenses`.

### Co-working

Co-working spaces are covered for up to 10 days a month.
![a photo](img/cowork.png)

## Hours

| Office | Core hours | Notes |
|---|---|---|
| Berlin | 10:00–15:00 | CET |
| Austin | 9am–2pm | |

```bash
tock submit --week
```
"""

DOCS_HTML = """<html><head><title>Client settings</title><script>alert(1)</script></head><body>
<nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
<h1>Client settings</h1>
<p>The client retries <em>three</em> times by default.</p>
<h2>Timeouts</h2>
<table><tr><th>Setting</th><th>Default</th></tr>
<tr><td>connect</td><td>5 seconds</td></tr><tr><td>read</td><td>30 seconds</td></tr></table>
<ul><li>Set <code>timeout=None</code> to wait forever.</li><li>Timeouts raise <b>TimeoutError</b>.</li></ul>
<footer>Copyright 2026</footer></body></html>"""

POLICY = """ACCEPTABLE USE POLICY

1. Scope

This policy applies to every account holder. It covers the website and the API.

2. Prohibited uses

- Sending unsolicited bulk messages.
- Scraping personal data.
"""

MARKUP = re.compile(r"\*\*|__|\]\(|!\[|^#+\s|^---$|`|\|", re.M)


def _load(tmp_path: Path, name: str, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_document(path.resolve(), name, 10**7)


def test_markdown_page_structure(tmp_path: Path) -> None:
    doc = _load(tmp_path, "working-remotely.md", HANDBOOK)
    assert doc.title == "Working remotely"
    assert doc.kind == "page"
    assert not MARKUP.search(doc.text), doc.text
    assert "owner: People team" not in doc.text  # front matter is metadata, not text
    assert doc.meta["owner"] == "People team"
    kinds = [(b.kind, doc.text[b.start : b.end]) for b in doc.blocks]
    assert ("heading", "Equipment") in kinds
    assert ("item", "A laptop is shipped to your home address.") in kinds
    assert ("item", "Monitors are reimbursed up to $300, see expenses.") in kinds
    assert ("row", "Office: Berlin; Core hours: 10:00–15:00; Notes: CET") in kinds
    assert ("row", "Office: Austin; Core hours: 9am–2pm") in kinds
    assert ("code", "tock submit --week") in kinds
    assert ("paragraph", "Read the remote policy before you start.") in kinds


SALARIES = """# Salaries

Our salary bands are below.

<table>
  <thead>
    <tr><th>Years Experience</th><th>Technical</th><th>Non-Technical</th></tr>
  </thead>
  <tbody>
    <tr><td>Less than 2</td><td>$50k</td><td>$40k</td></tr>

    <tr><td>More than 5</td><td><b>$70k</b></td><td>$60k</td></tr>
  </tbody>
</table>

Bands are reviewed every year.
"""


def test_an_html_table_in_markdown_reads_row_by_row_with_its_header(tmp_path: Path) -> None:
    """Like a Markdown table: not one run-on sentence of every cell (the issue's salary rubric)."""
    doc = _load(tmp_path, "salaries.md", SALARIES)
    kinds = [(b.kind, doc.text[b.start : b.end]) for b in doc.blocks]
    assert ("row", "Years Experience: Less than 2; Technical: $50k; Non-Technical: $40k") in kinds
    assert ("row", "Years Experience: More than 5; Technical: $70k; Non-Technical: $60k") in kinds
    assert ("paragraph", "Bands are reviewed every year.") in kinds
    assert "<t" not in doc.text and "Years Experience Technical" not in doc.text


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("Acme Offer Letter.txt", "Acme Offer Letter"),
        ("on-call-rota.txt", "On call rota"),
        ("API_v2.txt", "API v2"),
    ],
)
def test_a_title_from_the_file_name_keeps_its_case(tmp_path: Path, name: str, title: str) -> None:
    assert _load(tmp_path, name, "Some words about it.\n").title == title


def test_chunks_carry_section_paths_and_never_headings(tmp_path: Path) -> None:
    doc = _load(tmp_path, "working-remotely.md", HANDBOOK)
    chunks = chunk_document(doc, 120, 0)
    by_text = {c.text: c.metadata for c in chunks}
    cowork = next(m for t, m in by_text.items() if "Co-working spaces" in t)
    assert cowork["section"] == "Equipment › Co-working"
    assert cowork["context"] == "Working remotely › Equipment › Co-working"
    headings = {doc.text[b.start : b.end] for b in doc.blocks if b.kind == "heading"}
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert not any(line.strip() in headings for line in chunk.text.splitlines())
        assert chunk.metadata["kind"] == "page"


def test_rendered_spans_map_back_to_the_file(tmp_path: Path) -> None:
    doc = _load(tmp_path, "working-remotely.md", HANDBOOK)
    for block in doc.blocks:
        span = doc.source_span(block.start, block.end)
        assert span is not None
        raw = HANDBOOK[span[0] : span[1]]
        for word in re.findall(r"\w+", doc.text[block.start : block.end]):
            assert word in raw, (word, raw)


def test_html_page_structure(tmp_path: Path) -> None:
    doc = _load(tmp_path, "client.html", DOCS_HTML)
    assert doc.title == "Client settings"
    assert doc.kind == "page"
    assert "alert" not in doc.text and "Home" not in doc.text and "Copyright" not in doc.text
    kinds = [(b.kind, doc.text[b.start : b.end]) for b in doc.blocks]
    assert ("heading", "Timeouts") in kinds
    assert ("row", "Setting: connect; Default: 5 seconds") in kinds
    assert ("item", "Set timeout=None to wait forever.") in kinds
    chunks = chunk_document(doc, 900, 0)
    timeouts = [c for c in chunks if "5 seconds" in c.text]
    assert timeouts and timeouts[0].metadata["section"] == "Timeouts"


def test_plain_text_headings_and_items(tmp_path: Path) -> None:
    doc = _load(tmp_path, "acceptable-use.txt", POLICY)
    assert doc.kind == "document"
    kinds = [(b.kind, doc.text[b.start : b.end]) for b in doc.blocks]
    assert ("heading", "1. Scope") in kinds
    assert ("heading", "2. Prohibited uses") in kinds
    assert ("item", "Scraping personal data.") in kinds
    chunks = chunk_document(doc, 900, 0)
    scraping = next(c for c in chunks if "Scraping" in c.text)
    assert scraping.metadata["section"].endswith("2. Prohibited uses")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab c*_[]()!#|-`\n:>1.")), max_size=200))
def test_markdown_offsets_always_point_at_the_same_character(source: str) -> None:
    rendered = render_markdown(source)
    text = rendered.string
    assert len(rendered.offsets) == len(text)
    for i, ch in enumerate(text):
        at = rendered.offsets[i]
        assert 0 <= at <= len(source)
        if ch.isalnum():
            assert source[at] == ch


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("Ab c.\n-1 ")), max_size=200))
def test_plain_text_offsets_always_point_at_the_same_character(source: str) -> None:
    rendered = render_text(source)
    for i, ch in enumerate(rendered.string):
        if ch.isalnum():
            assert source[rendered.offsets[i]] == ch
