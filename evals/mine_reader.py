"""Mine (question, answer-sentence) pairs for training the reader from public handbooks, policies and docs.

People who write FAQs, handbooks and docs often put a question right above its answer: a question heading
("## How do I request time off?"), a bold question opening a paragraph ("**Can I work remotely?** Yes, ..."),
a "Q:" line, the `<summary>` of a `<details>` block ("<details><summary>Who approves expenses?</summary>
..."), or a table row whose first cell is the question (`| Question | Answer |` FAQ tables). This command reads every source listed in `evals/reader_data/sources.toml` from the local
mirror of its repository, at the pinned commit (`git show COMMIT:path`), renders each page with the
product's own loader (`ingest.loaders`) and cuts it into sentences with the product's own splitter
(`rag.text.sentence_spans`), so the sentences are exactly those the product would index and quote.

It writes, under `evals/reader_data/`:

- `questions.jsonl.gz`: one record per mined question: its page, the heading path above it, the
  question (markdown removed, ends with "?"), the first 1-4 answer sentences, and every other sentence
  of the page (outside the answer) with its heading path;
- `sentences.jsonl.gz`: every sentence of every page read (question headings and bold questions left
  out, so they cannot leak), for retrieval hard negatives and "unanswerable" questions;
- `manifest.json`: per source its repository, commit, licence, globs, pages read and questions mined,
  the accept/reject counts per reason, and the evaluation corpora that must never be mined.

A source may set `max_questions` in `sources.toml` so that no source dominates: its accepted questions
beyond that number are left out deterministically (the ones with the largest ids, which are hashes), and
counted as "capped" in the manifest (`question_kinds` counts the kinds before the cap).

Usage: `python -m evals.mine_reader [--mirror-root /work/.mirror] [--sample 10]`. Output is
deterministic: files and records are sorted, and the optional sample is drawn with a fixed seed.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import gzip
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ingest.loaders import Document, LoaderError, load_html, load_markdown
from ingest.structure import Block, section_paths
from rag.text import sentence_spans

DATA_DIR = Path(__file__).resolve().parent / "reader_data"
SOURCES_FILE = DATA_DIR / "sources.toml"
MAX_PAGE_BYTES = 1_500_000
MIN_WORDS, MAX_WORDS = 3, 25
MIN_ANSWER_WORDS = 5
MAX_ANSWER_SENTENCES = 4
PROSE_KINDS = frozenset({"paragraph", "item", "row"})

Json = dict[str, Any]


class MineError(RuntimeError):
    """A problem that stops the run; the message is one line."""


# --- sources -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Source:
    repo: str  # owner/name
    commit: str
    licence: str
    genre: str
    include: tuple[str, ...]  # globs: `**` crosses folders, `*` does not
    exclude: tuple[str, ...] = ()
    note: str = ""
    # "all": every page read goes to sentences.jsonl; "with-questions": only pages that gave a question
    # (for large product docs where few pages hold questions, to keep the outputs compact)
    keep_pages: str = "all"
    # at most this many questions from the source (0: no cap), so that no source dominates; the kept ones
    # are those with the smallest ids (a hash of source, path and question), a deterministic sample
    max_questions: int = 0

    def git_dir(self, mirror_root: Path) -> Path:
        """The bare git directory of the repository's mirror (a checkout's `.git` when that is what
        the mirror holds)."""
        base = mirror_root / self.repo.replace("/", "+") / "repo"
        for candidate in (base / ".git", base):
            if (candidate / "objects").is_dir():
                return candidate
        raise MineError(
            f"mirror of {self.repo} missing at {base} (bring it with the fetch tool: github:{self.repo})"
        )


def load_sources(path: Path) -> tuple[list[Source], list[Json]]:
    """The sources to mine and the excluded corpora, from `sources.toml`."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    sources = [
        Source(
            repo=s["repo"],
            commit=s["commit"],
            licence=s["licence"],
            genre=s["genre"],
            include=tuple(s["include"]),
            exclude=tuple(s.get("exclude", ())),
            note=s.get("note", ""),
            keep_pages=s.get("keep_pages", "all"),
            max_questions=int(s.get("max_questions", 0)),
        )
        for s in data["source"]
    ]
    repos = [s.repo for s in sources]
    odd = [s.repo for s in sources if s.keep_pages not in ("all", "with-questions")]
    if odd:
        raise MineError(f"keep_pages must be 'all' or 'with-questions' (sources: {', '.join(odd)})")
    if len(set(repos)) != len(repos):
        raise MineError("sources.toml lists a repository twice")
    excluded: list[Json] = list(data.get("excluded", []))
    banned = [s.repo for s in sources if _is_excluded(s.repo, excluded)]
    if banned:
        raise MineError(f"sources.toml lists excluded (evaluation) corpora: {', '.join(banned)}")
    return sources, excluded


def _is_excluded(repo: str, excluded: list[Json]) -> bool:
    lowered = repo.lower()
    for item in excluded:
        pattern = str(item.get("pattern", "")).lower()
        if pattern and _glob(pattern).fullmatch(lowered):
            return True
    return False


def _glob(pattern: str) -> re.Pattern[str]:
    """A path glob as a regex: `**/` any folders (or none), `**` anything, `*` within one name, `?` one
    character, `{a,b}` alternatives."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "{":
            close = pattern.index("}", i)
            out.append("(?:" + "|".join(re.escape(p) for p in pattern[i + 1 : close].split(",")) + ")")
            i = close + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _git(git_dir: Path, *args: str) -> bytes:
    result = subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise MineError(f"git {' '.join(args[:2])} in {git_dir}: {message[-1] if message else 'failed'}")
    return result.stdout


def source_files(source: Source, git_dir: Path) -> list[str]:
    """The paths of the source's pages at its commit, sorted."""
    listing = _git(git_dir, "ls-tree", "-r", "--name-only", "-z", source.commit).decode("utf-8", "replace")
    include = [_glob(p) for p in source.include]
    exclude = [_glob(p) for p in source.exclude]
    return sorted(
        path
        for path in listing.split("\0")
        if path and any(g.fullmatch(path) for g in include) and not any(g.fullmatch(path) for g in exclude)
    )


def read_blobs(git_dir: Path, commit: str, paths: list[str]) -> Iterator[tuple[str, bytes]]:
    """(path, content) of each file at `commit`, read through one `git cat-file --batch`."""
    if not paths:
        return
    request = "".join(f"{commit}:{p}\n" for p in paths).encode()
    result = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "--batch"], input=request, capture_output=True
    )
    if result.returncode != 0:
        raise MineError(f"git cat-file in {git_dir} failed")
    stream = io.BytesIO(result.stdout)
    for path in paths:
        header = stream.readline().decode().split()
        if len(header) < 3 or header[1] == "missing":
            continue
        size = int(header[2])
        data = stream.read(size)
        stream.read(1)  # the newline after the content
        if header[1] == "blob":
            yield path, data


# --- page formats ------------------------------------------------------------------------------------------

_MDX_LINE = re.compile(r"^(?:import|export)\s.*$", re.M)
_ERB = re.compile(r"<%.*?%>", re.S)
_HUGO_SHORTCODE_LINE = re.compile(r"^\s*\{\{[<%].*?[%>]\}\}\s*$", re.M)
_LIQUID_LINE = re.compile(r"^\s*\{%-?\s*(?:raw|endraw|include|capture|endcapture|if|endif|else|for|endfor|"
                          r"assign|comment|endcomment|tabs|endtabs|tab|endtab)\b.*?%\}\s*$", re.M)  # fmt: skip
_DOCUSAURUS_ADMONITION = re.compile(r"^\s*:::\s*\w*.*$", re.M)
_GITHUB_ALERT = re.compile(r"^(\s*>\s*)\[!(?:NOTE|TIP|IMPORTANT|WARNING|CAUTION)\]\s*$", re.M | re.I)
_GO_META = re.compile(r"\A\s*<!--\{.*?\}-->", re.S)


def to_markdown(path: str, text: str) -> str:
    """The page as Markdown the product's loader reads: MDX imports, ERB and template directive lines
    dropped (their inline forms are removed by the renderer itself); reStructuredText converted."""
    if path.endswith(".rst"):
        return rst_to_markdown(text)
    text = _ERB.sub("", text)
    if path.endswith(".mdx"):
        text = _MDX_LINE.sub("", text)
    text = _HUGO_SHORTCODE_LINE.sub("", text)
    text = _LIQUID_LINE.sub("", text)
    text = _GITHUB_ALERT.sub(r"\1", text)
    return _DOCUSAURUS_ADMONITION.sub("", text)


_RST_ADORN = re.compile(r"^([=\-~^\"'`#*+:._])\1{2,}\s*$")
_RST_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:-]+)::\s*(.*)$")
_RST_COMMENT = re.compile(r"^(\s*)\.\.(?:\s|$)")
_RST_DROP = frozenset(
    "toctree image figure raw include literalinclude csv-table contents meta highlight role index "
    "automodule autoclass autofunction automethod autodata program option cmdoption glossary only "
    "sectionauthor moduleauthor currentmodule module graphviz mermaid youtube video".split()
)
_RST_CODE = frozenset({"code-block", "code", "sourcecode", "prompt", "parsed-literal"})
_RST_ROLE = re.compile(r":[\w:+-]+:`(?:([^`<]*?)\s*<[^`>]*>|([^`]*))`")
_RST_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]*>`__?")
_RST_REF = re.compile(r"`([^`]+)`__?")
_RST_LITERAL = re.compile(r"``(.+?)``")
_RST_SUBST = re.compile(r"\|([\w -]+)\|_?")


def _rst_inline(line: str) -> str:
    line = _RST_LITERAL.sub(lambda m: "`" + m.group(1) + "`", line)
    line = _RST_ROLE.sub(lambda m: (m.group(1) or m.group(2) or "").strip().lstrip("~!"), line)
    line = _RST_LINK.sub(r"\1", line)
    line = _RST_REF.sub(r"\1", line)
    return _RST_SUBST.sub("", line)


def rst_to_markdown(text: str) -> str:
    """A plain reStructuredText to Markdown conversion, enough for prose: section titles become ATX
    headings (levels in order of first use of each adornment), code and literal blocks become fences,
    admonitions keep their text, other directives and comments are dropped, roles keep their text."""
    lines = text.replace("\t", "    ").split("\n")
    out: list[str] = []
    styles: list[tuple[str, bool]] = []
    i = 0

    def indented_block(j: int, indent: int) -> int:
        """The index after the block of lines indented more than `indent` (blank lines inside)."""
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            j += 1
        return j

    def level(char: str, over: bool) -> int:
        if (char, over) not in styles:
            styles.append((char, over))
        return min(styles.index((char, over)) + 1, 6)

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        # over-and-under title
        if (
            _RST_ADORN.match(line)
            and i + 2 < len(lines)
            and lines[i + 2].strip() == line.strip()
            and stripped
        ):
            title = lines[i + 1].strip()
            if title:
                out += ["", "#" * level(stripped[0], True) + " " + _rst_inline(title), ""]
                i += 3
                continue
        if (
            stripped
            and not line.startswith((" ", "\t"))
            and _RST_ADORN.match(nxt)
            and len(nxt.strip()) >= max(3, len(stripped) - 2)
        ):
            out += ["", "#" * level(nxt.strip()[0], False) + " " + _rst_inline(stripped), ""]
            i += 2
            continue
        if _RST_ADORN.match(line) and len(stripped) >= 4 and out[-1:] != [""]:
            i += 1  # a transition or stray adornment
            continue
        directive = _RST_DIRECTIVE.match(line)
        if directive:
            indent, name, arg = len(directive.group(1)), directive.group(2).lower(), directive.group(3)
            end = indented_block(i + 1, indent)
            body = [b for b in lines[i + 1 : end] if not re.match(r"^\s*:[\w-]+:", b) or not b.strip()]
            if name in _RST_CODE:
                code = [b[indent + 3 :] if len(b) > indent + 3 else b.strip() for b in body]
                out += ["", "```", *code, "```", ""]
            elif name not in _RST_DROP and not name.startswith(("auto", "py:", "c:", "js:")):
                if arg and name not in ("tab", "tab-set", "tab-item", "container", "rst-class", "class"):
                    out += ["", _rst_inline(arg), ""] if name in ("topic", "sidebar", "rubric") else []
                inner = rst_to_markdown("\n".join(_dedent(body)))
                out += ["", inner, ""]
            i = end
            continue
        if _RST_COMMENT.match(line):
            i = indented_block(i + 1, len(line) - len(line.lstrip()))
            continue
        if stripped.startswith(("+-", "+=")) and set(stripped) <= set("+-=| "):
            i += 1  # grid table borders
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            literal = stripped[:-2].rstrip()
            out.append(line.rstrip()[:-2].rstrip() + (":" if literal and not literal.endswith(":") else ""))
            indent = len(line) - len(line.lstrip())
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            end = (
                indented_block(j, indent) if j < len(lines) and lines[j].startswith(" " * (indent + 1)) else j
            )
            if end > j:
                out += ["", "```", *_dedent(lines[j:end]), "```", ""]
            i = max(end, i + 1)
            continue
        if re.match(r"^\s*#\.\s", line):
            line = line.replace("#.", "1.", 1)
        out.append(_rst_inline(line.strip()) if line.startswith("   ") and not re.match(
            r"^\s*(?:[-*+]|\d+\.)\s", line) else _rst_inline(line))  # fmt: skip
        i += 1
    return "\n".join(out)


def _dedent(lines: list[str]) -> list[str]:
    indents = [len(b) - len(b.lstrip()) for b in lines if b.strip()]
    cut = min(indents) if indents else 0
    return [b[cut:] for b in lines]


def load_page(path: str, source: str, data: bytes) -> tuple[Document, str | None]:
    """The rendered page and, for Markdown, the Markdown text its offsets index into."""
    if path.endswith((".html", ".htm")):
        text = _GO_META.sub("", data.decode("utf-8", "replace"))
        return load_html(Path(path), source, text.encode()), None
    raw = data.decode("utf-8-sig", "replace").replace("\r\n", "\n").replace("\r", "\n")
    markdown = to_markdown(path, raw)
    return load_markdown(Path(path), source, markdown.encode()), markdown


# --- mining ------------------------------------------------------------------------------------------------

_QUESTION_PREFIX = re.compile(r"^\s*(?:(?:Q|Question|FAQ)\s*\d*\s*[:.)-]|\d{1,3}[.)]|[-–•]|\(\d+\))\s*", re.I)
_ANSWER_PREFIX = re.compile(r"^\s*(?:A|Answer)\s*[:.)-]\s*", re.I)
_PLACEHOLDER = re.compile(
    r"\{\{|\}\}|\{%|<%|\$\{|\$[A-Z_]{2,}|<[a-z_-]+>|\[\[|\bTODO\b|\bTBD\b|\bXXX\b|lorem ipsum|%s\b|\bfoo\b",
    re.I,
)
_RHETORICAL = re.compile(
    r"^(?:what'?s next|what next|what now|now what|what else|next steps?|questions|any questions|got questions|"
    r"have (?:a |any |more |other )?questions|still have (?:a |any )?questions|need (?:more |some )?help|"
    r"need help with (?:this|that)|why(?: is this)?(?: important)?|how(?: does it work)?|what(?: is it)?|"
    r"who(?: are we)?|what (?:is|are) (?:this|these|they|it)|what do you think|why not|why does (?:this|it) matter|are you ready|ready to get started|"
    r"want to (?:learn|know|read) more|looking for (?:more|something else)|what'?s (?:new|this)|"
    r"can we help|how can (?:we|i) help|did you know|where (?:do|should) i (?:start|begin)|"
    r"what does this (?:mean|look like)(?: for (?:me|you))?|found (?:a bug|an issue))\s*\??$",
    re.I,
)
_LINKS = re.compile(r"!?\[([^\]]*)\]\([^)]*\)|<https?://[^>]+>|https?://\S+")
_WORD = re.compile(r"[A-Za-z0-9][\w'’-]*")


def clean_question(text: str) -> str:
    """A heading's or bold question's text as a plain question: prefixes such as "Q:" or "3." dropped,
    spaces collapsed, ending with "?"."""
    text = " ".join(text.replace("\u00a0", " ").split())
    text = _QUESTION_PREFIX.sub("", text)
    text = text.strip(" *_#:>`").strip()
    text = re.sub(r"\s+\?$", "?", text)
    return text


def words(text: str) -> int:
    return len(_WORD.findall(text))


@dataclasses.dataclass
class Candidate:
    """A question found on a page: its text, where it sits and the span of text holding its answer."""

    question: str
    section: tuple[str, ...]
    answer_blocks: list[tuple[int, int, str]]  # (start, end, kind) spans of the answer region, in order
    question_span: tuple[int, int]  # the question's own text in the rendered page (never a sentence)
    kind: str  # heading | bold | qline | details | table


@dataclasses.dataclass
class Page:
    path: str
    title: str
    doc: Document
    markdown: str | None
    paths: list[tuple[str, ...]]


def _raw_before(page: Page, pos: int, n: int) -> str:
    """The `n` characters of the Markdown source before rendered position `pos` (empty when unmapped)."""
    if page.markdown is None or page.doc.offsets is None or pos >= len(page.doc.offsets):
        return ""
    at = page.doc.offsets[pos]
    return page.markdown[max(0, at - n) : at]


def _raw_after(page: Page, pos: int, n: int) -> str:
    """The `n` characters of the Markdown source after rendered position `pos` (inclusive of it)."""
    if page.markdown is None or page.doc.offsets is None or pos >= len(page.doc.offsets):
        return ""
    at = page.doc.offsets[pos]
    return page.markdown[at + 1 : at + 1 + n]


def _bold_question_end(page: Page, block: Block) -> int | None:
    """Where the bold question opening a paragraph ends (just after its "?"), or None."""
    text = page.doc.text
    if _raw_before(page, block.start, 2) not in ("**", "__"):
        return None
    for match in re.finditer(r"\?", text[block.start : block.end]):
        pos = block.start + match.start()
        after = _raw_after(page, pos, 3)
        if after.startswith(("**", "__")) or after.startswith(("`**", ")**", '"**')):
            return pos + 1
    # the bold part may end just before the "?" ("**Can I ...**?")
    return None


_QLINE = re.compile(r"(?:Q|Question)\s*\d*\s*[:.)]\s*(.{5,}?\?)(?=\s|$)", re.I)
_SUMMARY_CLOSE = re.compile(r"\s*(?:</[a-z]+>\s*)*</summary>", re.I)
_SUMMARY = re.compile(r"<summary[^>]*>\s*(?:<[a-z]+[^>]*>\s*)*\Z", re.I)
# a table row as the loader renders it: "Header: cell; Header: cell"; a FAQ row's first cell is a question
_ROW_QUESTION = re.compile(r"([^:;\n]{1,40}): ([^;\n]{5,}?\?)\s*; ([^:;\n]{1,40}): (?=\S)")
_FAQ_HEADERS = re.compile(
    r"(?:.*\b(?:questions?|q|faqs?|ask(?:ed)?)\b.*)|(?:.*\b(?:answers?|a|response|reply)\b.*)", re.I
)


def _summary_question_end(page: Page, block: Block) -> int | None:
    """Where the question in the `<summary>` of a `<details>` block opening this paragraph ends (just after
    its "?"), or None. The answer may follow in the same paragraph when no blank line separates them."""
    if block.kind != "paragraph" or not _SUMMARY.search(_raw_before(page, block.start, 80)):
        return None
    text = page.doc.text
    for match in re.finditer(r"\?", text[block.start : block.end]):
        pos = block.start + match.start()
        if _SUMMARY_CLOSE.match(_raw_after(page, pos, 60)):
            return pos + 1
    return None


def find_candidates(page: Page) -> Iterator[Candidate]:
    """The question headings, bold questions and "Q:" lines of a page, each with its answer region."""
    blocks, text = page.doc.blocks, page.doc.text
    for i, block in enumerate(blocks):
        if block.kind == "heading":
            raw = text[block.start : block.end]
            if not raw.rstrip().endswith("?") and not raw.rstrip().endswith("?)"):
                continue
            region = []
            for later in blocks[i + 1 :]:
                if later.kind == "heading" and later.level <= block.level:
                    break
                region.append((later.start, later.end, later.kind))
            yield Candidate(raw, page.paths[i], region, (block.start, block.end), "heading")
            continue
        if block.kind == "row":
            row = _ROW_QUESTION.match(text, block.start, block.end)
            # only FAQ tables: the question column or the one after it is headed like "Question" / "Answer"
            if row and (
                _FAQ_HEADERS.fullmatch(row.group(1).strip()) or _FAQ_HEADERS.fullmatch(row.group(3).strip())
            ):
                q_start, q_end = row.start(2), row.end(2)
                yield Candidate(
                    text[q_start:q_end],
                    page.paths[i],
                    [(row.end(), block.end, "row")],
                    (q_start, q_end),
                    "table",
                )
            continue
        if block.kind not in ("paragraph", "item"):
            continue
        end = _summary_question_end(page, block)
        if end is not None:
            region = [(end, block.end, block.kind)] if end < block.end else []
            for later in blocks[i + 1 :]:
                if later.kind == "heading" or _summary_question_end(page, later) is not None:
                    break
                if region and "</details>" in _raw_before(page, later.start, 40).lower():
                    break
                if _bold_question_end(page, later) is not None or _QLINE.match(text, later.start, later.end):
                    break
                region.append((later.start, later.end, later.kind))
            yield Candidate(text[block.start : end], page.paths[i], region, (block.start, end),
                            "details")  # fmt: skip
            continue
        end = _bold_question_end(page, block)
        kind = "bold"
        if end is None:
            match = _QLINE.match(text, block.start, block.end)
            if not match:
                continue
            end, kind = match.end(1), "qline"
        region = [(end, block.end, block.kind)] if end < block.end else []
        for later in blocks[i + 1 :]:
            if later.kind == "heading" or _bold_question_end(page, later) is not None:
                break
            if _QLINE.match(text, later.start, later.end) or _summary_question_end(page, later) is not None:
                break
            region.append((later.start, later.end, later.kind))
        yield Candidate(text[block.start : end], page.paths[i], region, (block.start, end), kind)


def _source_text(page: Page, start: int, end: int) -> str:
    """The Markdown source of a rendered span (the rendered text when unmapped)."""
    span = page.doc.source_span(start, end) if page.markdown is not None else None
    if span is None or page.markdown is None:
        return page.doc.text[start:end]
    return page.markdown[span[0] : span[1]]


def judge(candidate: Candidate, page: Page) -> tuple[str, str, list[tuple[int, int]]]:
    """(reason, question, answer sentence spans): reason is "ok" for an accepted question."""
    question = clean_question(candidate.question)
    if not question.endswith("?"):
        return "not_a_question", question, []
    n = words(question)
    if n < MIN_WORDS:
        return "too_few_words", question, []
    if n > MAX_WORDS:
        return "too_many_words", question, []
    if _RHETORICAL.match(question):
        return "rhetorical_or_navigation", question, []
    if _PLACEHOLDER.search(question):
        return "template_placeholder", question, []
    prose = [(s, e, k) for s, e, k in candidate.answer_blocks if k in PROSE_KINDS]
    code = [b for b in candidate.answer_blocks if b[2] == "code"]
    if not candidate.answer_blocks:
        return "no_answer", question, []
    if not prose:
        return "answer_only_code" if code else "no_answer", question, []
    text = page.doc.text
    prose_words = sum(words(text[s:e]) for s, e, _ in prose)
    if prose_words < MIN_ANSWER_WORDS:
        return "answer_only_code" if code else "answer_too_short", question, []
    source = " ".join(_source_text(page, s, e) for s, e, _ in prose)
    unlinked = _LINKS.sub("", source)
    if words(unlinked) < MIN_ANSWER_WORDS and _LINKS.search(source):
        items = sum(1 for _, _, k in prose if k == "item")
        return ("answer_only_links" if items > 1 else "answer_only_link"), question, []
    spans: list[tuple[int, int]] = []
    for s, e, _ in prose:
        for span in sentence_spans(text, s, e):
            spans.append(span)
            if len(spans) == MAX_ANSWER_SENTENCES:
                break
        if len(spans) == MAX_ANSWER_SENTENCES:
            break
    if spans and _ANSWER_PREFIX.match(text[spans[0][0] : spans[0][1]]) and words(text[slice(*spans[0])]) < 2:
        spans = spans[1:]
    if not spans or sum(words(text[s:e]) for s, e in spans) < MIN_ANSWER_WORDS:
        return "answer_too_short", question, []
    if all(text[s:e].rstrip().endswith("?") for s, e in spans):
        return "answer_is_question", question, []
    return "ok", question, spans


def page_sentences(page: Page, hidden: list[tuple[int, int]]) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, section) of every sentence of the page's prose, except those inside `hidden` spans
    (question texts)."""
    out = []
    for block, path in zip(page.doc.blocks, page.paths, strict=True):
        if block.kind not in PROSE_KINDS:
            continue
        starts = [block.start]
        for hs, he in hidden:
            if block.start <= hs < block.end:
                starts = [max(starts[0], he)]
        for s, e in sentence_spans(page.doc.text, starts[0], block.end):
            if any(hs <= s < he for hs, he in hidden):
                continue
            out.append((s, e, path))
    return out


def _plain(text: str) -> str:
    return " ".join(text.split())


def _answer_text(text: str) -> str:
    """An answer sentence as rendered, without a leading "A:" label."""
    return _ANSWER_PREFIX.sub("", _plain(text), count=1) or _plain(text)


@dataclasses.dataclass
class SourceResult:
    questions: list[Json]
    sentences: list[Json]
    pages_read: int
    pages_kept: int
    pages_failed: collections.Counter[str]
    reasons: collections.Counter[str]
    kinds: collections.Counter[str]
    capped: int = 0  # accepted questions left out by the source's max_questions


def mine_source(source: Source, git_dir: Path) -> SourceResult:
    """Every accepted question of one source, and every sentence of its pages."""
    paths = source_files(source, git_dir)
    result = SourceResult([], [], 0, 0, collections.Counter(), collections.Counter(), collections.Counter())
    seen: set[str] = set()
    for path, data in read_blobs(git_dir, source.commit, paths):
        if len(data) > MAX_PAGE_BYTES:
            result.pages_failed["too_large"] += 1
            continue
        try:
            doc, markdown = load_page(path, f"{source.repo}/{path}", data)
        except LoaderError as exc:
            result.pages_failed[str(exc).split("(")[0].strip()] += 1
            continue
        title = _plain(doc.title)
        page = Page(path, title, doc, markdown, section_paths(doc.text, doc.blocks, doc.title))
        result.pages_read += 1
        accepted: list[tuple[Candidate, str, list[tuple[int, int]]]] = []
        hidden: list[tuple[int, int]] = []
        for candidate in find_candidates(page):
            hidden.append(candidate.question_span)
            reason, question, spans = judge(candidate, page)
            if reason == "ok":
                key = re.sub(r"[^\w]+", " ", question.casefold()).strip()
                if key in seen:
                    reason = "duplicate"
                else:
                    seen.add(key)
            result.reasons[reason] += 1
            if reason == "ok":
                result.kinds[candidate.kind] += 1
                accepted.append((candidate, question, spans))
        if source.keep_pages == "with-questions" and not accepted:
            continue
        result.pages_kept += 1
        sentences = page_sentences(page, hidden)
        text = doc.text
        for s, e, section in sentences:
            result.sentences.append(
                {"source": source.repo, "path": path, "title": title, "section": list(section),
                 "text": _plain(text[s:e])}
            )  # fmt: skip
        for n, (candidate, question, spans) in enumerate(accepted):
            region = [(s, e) for s, e, _ in candidate.answer_blocks]
            lo = min([candidate.question_span[0], *(s for s, _ in region)])
            hi = max([candidate.question_span[1], *(e for _, e in region)])
            digest = hashlib.sha1(f"{source.repo}\x1f{path}\x1f{n}\x1f{question}".encode()).hexdigest()[:16]
            result.questions.append(
                {
                    "id": f"{source.repo.replace('/', '+')}:{digest}",
                    "source": source.repo,
                    "genre": source.genre,
                    "path": path,
                    "title": title,
                    "section": list(candidate.section),
                    "question": question,
                    "answer": [_answer_text(text[s:e]) for s, e in spans],
                    "page": [
                        {"section": list(sec), "text": _plain(text[s:e])}
                        for s, e, sec in sentences
                        if not lo <= s < hi
                    ],
                }
            )
    if source.max_questions and len(result.questions) > source.max_questions:
        keep = {q["id"] for q in sorted(result.questions, key=lambda q: q["id"])[: source.max_questions]}
        result.capped = len(result.questions) - len(keep)
        result.questions = [q for q in result.questions if q["id"] in keep]
        result.reasons["ok"] -= result.capped
        result.reasons["capped"] += result.capped
    return result


# --- output ------------------------------------------------------------------------------------------------


def write_jsonl_gz(path: Path, records: Iterable[Json]) -> int:
    """Write records as gzipped JSON lines, reproducibly (no timestamp in the gzip header)."""
    n = 0
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        for record in records:
            gz.write((json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n").encode())
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.mine_reader", description=__doc__.split("\n")[0])
    parser.add_argument("--mirror-root", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--sources", type=Path, default=SOURCES_FILE)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--only", nargs="*", default=None, help="mine only these repos (owner/name); no output"
    )
    parser.add_argument("--sample", type=int, default=0, help="print N random accepted records (seeded)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    try:
        sources, excluded = load_sources(args.sources)
        unknown = sorted(set(args.only or ()) - {s.repo for s in sources})
        if unknown:
            raise MineError(f"not in {args.sources.name}: {', '.join(unknown)}")
        chosen = [s for s in sources if args.only is None or s.repo in args.only]
        git_dirs = {s.repo: s.git_dir(args.mirror_root) for s in chosen}  # fail early on a missing mirror
        questions: list[Json] = []
        sentences: list[Json] = []
        per_source: list[Json] = []
        totals: collections.Counter[str] = collections.Counter()
        for source in chosen:
            result = mine_source(source, git_dirs[source.repo])
            questions += result.questions
            sentences += result.sentences
            totals.update(result.reasons)
            per_source.append(
                {
                    "repo": source.repo,
                    "commit": source.commit,
                    "licence": source.licence,
                    "genre": source.genre,
                    "include": list(source.include),
                    "exclude": list(source.exclude),
                    "note": source.note,
                    "pages_read": result.pages_read,
                    "keep_pages": source.keep_pages,
                    "pages_kept": result.pages_kept,
                    "pages_failed": dict(sorted(result.pages_failed.items())),
                    "sentences": len(result.sentences),
                    "questions": len(result.questions),
                    "max_questions": source.max_questions,
                    "questions_capped": result.capped,
                    "question_kinds": dict(sorted(result.kinds.items())),
                    "candidates": dict(sorted(result.reasons.items())),
                }
            )
            print(
                f"{source.repo:45} pages {result.pages_read:5}  questions {len(result.questions):5}  "
                f"sentences {len(result.sentences):6}",
                file=sys.stderr,
            )
    except MineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    questions.sort(key=lambda r: (r["source"], r["path"], r["id"]))
    total = len(questions)
    for entry in per_source:
        entry["share"] = round(entry["questions"] / total, 4) if total else 0.0
    print(f"total questions {total}; candidates {dict(totals.most_common())}", file=sys.stderr)
    if args.sample:
        rng = random.Random(args.seed)
        for record in rng.sample(questions, min(args.sample, total)):
            short = {k: v for k, v in record.items() if k != "page"}
            short["page"] = f"<{len(record['page'])} sentences>"
            print(json.dumps(short, ensure_ascii=False))
    if args.only is not None:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl_gz(args.out / "questions.jsonl.gz", questions)
    write_jsonl_gz(args.out / "sentences.jsonl.gz", sentences)
    manifest = {
        "description": "Reader training data mined from public docs: questions written by people with the "
        "answer sentences that follow them. Built by `python -m evals.mine_reader`.",
        "splitter": "ingest.loaders.load_markdown / load_html + rag.text.sentence_spans",
        "totals": {
            "sources": len(per_source),
            "questions": total,
            "sentences": len(sentences),
            "pages_read": sum(e["pages_read"] for e in per_source),
            "candidates": dict(sorted(totals.items())),
            "by_genre": dict(sorted(collections.Counter(q["genre"] for q in questions).items())),
        },
        "sources": per_source,
        "excluded": excluded,
        "not_used": tomllib.loads(args.sources.read_text(encoding="utf-8")).get("not_used", []),
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
