from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.threads import Comment, Thread, ThreadParseError, looks_like_thread, parse_thread

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "imperial-jari-thread.txt"


def corpus_text() -> str:
    return CORPUS.read_text(encoding="utf-8")


def comment_block(
    depth: int,
    author: str,
    up: int = 1,
    down: int = 0,
    body: tuple[str, ...] = ("Body text.",),
    *,
    op: bool = False,
    edited: bool = False,
    age: str = "5 months ago",
    base: int = 2,
    pre: tuple[str, ...] = ("link", "fedilink", "English"),
) -> str:
    """One comment as the Lemmy web UI pastes it, with `\\n` line endings."""
    ind = " " * (base + 2 * depth)
    meta = [*pre, "arrow-up", str(up), "arrow-down", str(down), "·"]
    if edited:
        meta.append("edit-2")
    meta.append(age)
    lines = [f"{ind}• {author}{'OP' if op else ''}"] + [f"{ind}  {m}" for m in meta] + [""]
    for para in body:
        lines += [f"{ind}  {para}", ""]
    return "\n".join(lines) + "\n"


def check_spans(source: str, thread: Thread) -> None:
    for c in thread.comments:
        assert source[c.start : c.end] == c.text
        assert c.text == c.text.strip()
        for s, e in c.paragraphs():
            para = source[s:e]
            assert para and para == para.strip()
            assert c.start <= s < e <= c.end
    if thread.preamble is not None:
        s, e = thread.preamble
        assert source[s:e].strip() == source[s:e] != ""


# --------------------------------------------------------------------------- the real corpus file


def test_corpus_file() -> None:
    source = corpus_text()
    assert looks_like_thread(source)
    thread = parse_thread(source)
    cs = thread.comments
    assert thread.preamble is None
    assert [c.author for c in cs] == [
        "TheGrandNagus@lemmy.world",
        "cyd@lemmy.world",
        "0x815@feddit.de",
        "cyd@lemmy.world",
    ]
    assert [(c.upvotes, c.downvotes) for c in cs] == [(26, 2), (3, 12), (9, 1), (2, 6)]
    assert [c.score for c in cs] == [24, -9, 8, -4]
    assert [c.is_op for c in cs] == [False, False, True, False]
    assert [c.edited for c in cs] == [True, True, False, False]
    assert [c.depth for c in cs] == [0, 1, 2, 3]
    assert [c.parent for c in cs] == [None, 0, 1, 2]
    assert [c.index for c in cs] == [0, 1, 2, 3]
    assert all(c.age == "5 months ago" for c in cs)
    for c in cs:
        assert source[c.start : c.end] == c.text
    assert cs[0].text.startswith("You post a lot of pro-china stuff.")
    assert cs[-1].text.endswith("to enforce that.")
    assert [len(c.paragraphs()) for c in cs] == [4, 3, 10, 1]
    for c in cs:
        for s, e in c.paragraphs():
            assert source[s:e] and source[s:e] == source[s:e].strip()
    # Inner lines keep their indentation verbatim.
    assert "Strange.\n\n    And the Imperial College" in cs[0].text
    assert source[slice(*cs[2].paragraphs()[0])] == "Chinese orgs love signing MOUs"
    check_spans(source, thread)


def test_corpus_with_crlf_line_endings() -> None:
    lf = corpus_text()
    source = lf.replace("\n", "\r\n")
    lf_thread, thread = parse_thread(lf), parse_thread(source)
    assert len(thread.comments) == 4
    for a, b in zip(lf_thread.comments, thread.comments, strict=True):
        assert (a.author, a.is_op, a.upvotes, a.downvotes, a.edited, a.age, a.depth, a.parent) == (
            b.author,
            b.is_op,
            b.upvotes,
            b.downvotes,
            b.edited,
            b.age,
            b.depth,
            b.parent,
        )
        assert b.text == a.text.replace("\n", "\r\n")
        assert [source[s:e] for s, e in b.paragraphs()] == [lf[s:e] for s, e in a.paragraphs()]
    check_spans(source, thread)


# ---------------------------------------------------------------------------------- tree structure


@pytest.mark.parametrize(
    ("depths", "parents", "base"),
    [
        pytest.param([0, 0], [None, None], 2, id="two-siblings"),
        pytest.param([0, 1, 1, 0], [None, 0, 0, None], 2, id="sibling-replies"),
        pytest.param([0, 1, 2, 1, 2, 0, 1], [None, 0, 1, 0, 3, None, 5], 2, id="branching"),
        pytest.param([0, 1, 2, 3, 1], [None, 0, 1, 2, 0], 2, id="back-up-several-levels"),
        pytest.param([0, 1, 2, 0], [None, 0, 1, None], 0, id="bullet-at-column-0"),
        pytest.param([0, 1, 1], [None, 0, 0], 8, id="deep-base-indent"),
    ],
)
def test_reply_tree(depths: list[int], parents: list[int | None], base: int) -> None:
    source = "".join(
        comment_block(d, f"user{i}@lemmy.world", i, 0, (f"Comment number {i}.",), base=base)
        for i, d in enumerate(depths)
    )
    thread = parse_thread(source)
    assert [c.depth for c in thread.comments] == depths
    assert [c.parent for c in thread.comments] == parents
    assert [c.text for c in thread.comments] == [f"Comment number {i}." for i in range(len(depths))]
    assert [c.upvotes for c in thread.comments] == list(range(len(depths)))
    check_spans(source, thread)


@pytest.mark.parametrize(
    ("indents", "depths", "parents"),
    [
        # Pasted from the middle of a thread: the shallowest bullet defines depth 0.
        pytest.param([6, 4], [1, 0], [None, None], id="starts-deeper"),
        # A level is missing: depth follows the indentation, the parent is unknown.
        pytest.param([2, 6], [0, 2], [None, None], id="skipped-level"),
        pytest.param([2, 4, 2, 6], [0, 1, 0, 2], [None, 0, None, None], id="skipped-level-after-sibling"),
    ],
)
def test_orphans_get_no_parent(indents: list[int], depths: list[int], parents: list[int | None]) -> None:
    source = "".join(comment_block(0, f"u{i}@x.org", base=ind) for i, ind in enumerate(indents))
    thread = parse_thread(source)
    assert [c.depth for c in thread.comments] == depths
    assert [c.parent for c in thread.comments] == parents


# ----------------------------------------------------------------------------- metadata variants


@dataclass(frozen=True)
class MetaCase:
    header: str
    meta: list[str]
    author: str
    is_op: bool
    votes: tuple[int, int]
    edited: bool
    age: str


META_CASES = {
    "full": MetaCase(
        "• a@lemmy.ml",
        ["link", "fedilink", "English", "arrow-up", "7", "arrow-down", "3", "·", "edit-2", "1 year ago"],
        "a@lemmy.ml",
        False,
        (7, 3),
        True,
        "1 year ago",
    ),
    "op-no-link-lines": MetaCase(
        "• bob_2@sh.itjust.worksOP",
        ["arrow-up", "0", "arrow-down", "0", "·", "3 days ago"],
        "bob_2@sh.itjust.works",
        True,
        (0, 0),
        False,
        "3 days ago",
    ),
    "no-language": MetaCase(
        "• c@feddit.de",
        ["link", "fedilink", "arrow-up", "1", "arrow-down", "2", "·", "an hour ago"],
        "c@feddit.de",
        False,
        (1, 2),
        False,
        "an hour ago",
    ),
    "no-middle-dot": MetaCase(
        "• d@x.y",
        ["English", "arrow-up", "12345", "arrow-down", "6", "just now"],
        "d@x.y",
        False,
        (12345, 6),
        False,
        "just now",
    ),
    "translated-age": MetaCase(
        "• e@feddit.de",
        ["Deutsch", "arrow-up", "4", "arrow-down", "0", "·", "edit-2", "vor 5 Monaten"],
        "e@feddit.de",
        False,
        (4, 0),
        True,
        "vor 5 Monaten",
    ),
    "age-missing": MetaCase(
        "• f@x.y",
        ["arrow-up", "4", "arrow-down", "0", "·"],
        "f@x.y",
        False,
        (4, 0),
        False,
        "",
    ),
    "trailing-space-and-nbsp-bullet": MetaCase(
        "•\u00a0g@x.yOP  ",
        ["arrow-up", "4", "arrow-down", "1", "·", "2 weeks ago"],
        "g@x.y",
        True,
        (4, 1),
        False,
        "2 weeks ago",
    ),
}


@pytest.mark.parametrize("case", list(META_CASES.values()), ids=list(META_CASES))
def test_metadata_variants(case: MetaCase) -> None:
    source = "\n".join(["  " + case.header, *("    " + m for m in case.meta), "", "    The body.", ""])
    assert looks_like_thread(source)
    [c] = parse_thread(source).comments
    assert (c.author, c.is_op, (c.upvotes, c.downvotes), c.edited, c.age) == (
        case.author,
        case.is_op,
        case.votes,
        case.edited,
        case.age,
    )
    assert c.text == "The body."
    assert (c.depth, c.parent, c.index) == (0, None, 0)


def test_body_directly_after_age_without_blank_line() -> None:
    source = "  • a@b.c\n    arrow-up\n    1\n    arrow-down\n    0\n    ·\n    2 days ago\n    Body.\n"
    [c] = parse_thread(source).comments
    assert (c.age, c.text) == ("2 days ago", "Body.")


def test_empty_body() -> None:
    first = "  • a@b.c\n    arrow-up\n    1\n    arrow-down\n    0\n    ·\n    2 days ago\n"
    source = first + "\n" + comment_block(1, "z@b.c", body=("Reply.",))
    a, b = parse_thread(source).comments
    assert (a.text, a.start, a.end) == ("", len(first), len(first))
    assert a.paragraphs() == []
    assert (b.parent, b.text) == (0, "Reply.")
    # ... also as the very last line of the file, without a newline.
    [c] = parse_thread(first.rstrip("\n")).comments
    assert (c.text, c.start, c.end, c.age) == ("", len(first) - 1, len(first) - 1, "2 days ago")


def test_multiline_paragraphs_and_whitespace_blank_lines() -> None:
    source = (
        "  • a@b.c\n    arrow-up\n    1\n    arrow-down\n    0\n    ·\n    now\n"
        "\n    line one\n    line two\n    \n    second para   \n\n\n"
    )
    [c] = parse_thread(source).comments
    assert c.text == "line one\n    line two\n    \n    second para"
    assert [source[s:e] for s, e in c.paragraphs()] == ["line one\n    line two", "second para"]


def test_bulleted_address_in_body_is_not_a_header() -> None:
    body = ("Contact:", "• press@example.com", "• someone@university.ac.uk", "Thanks.")
    source = comment_block(0, "a@b.c", body=body) + comment_block(1, "d@e.f", body=("Reply.",))
    thread = parse_thread(source)
    assert [c.author for c in thread.comments] == ["a@b.c", "d@e.f"]
    assert [source[s:e] for s, e in thread.comments[0].paragraphs()] == list(body)
    assert thread.comments[1].parent == 0


def test_byte_order_mark() -> None:
    source = "\ufeff" + comment_block(0, "a@b.c")
    thread = parse_thread(source)
    assert thread.preamble is None
    assert [c.author for c in thread.comments] == ["a@b.c"]


# ------------------------------------------------------------------------------------- preamble


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        pytest.param(
            "Post title\n\nThe post body,\n  over two lines.\n\n",
            "Post title\n\nThe post body,\n  over two lines.",
            id="post",
        ),
        pytest.param("\n  \n\n", None, id="blank"),
        pytest.param("", None, id="none"),
        pytest.param("  Indented title  \r\n\r\n", "Indented title", id="crlf-indented"),
    ],
)
def test_preamble(before: str, expected: str | None) -> None:
    source = before + comment_block(0, "a@b.c")
    thread = parse_thread(source)
    if expected is None:
        assert thread.preamble is None
    else:
        assert thread.preamble is not None
        assert source[slice(*thread.preamble)] == expected
    assert [c.text for c in thread.comments] == ["Body text."]


# ---------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("line_no", "replacement", "fragment"),
    [
        pytest.param(6, "26a", "upvote count", id="upvotes-not-int"),
        pytest.param(6, "1.2K", "upvote count", id="upvotes-abbreviated"),
        pytest.param(6, "-3", "upvote count", id="upvotes-negative"),
        pytest.param(8, "two", "downvote count", id="downvotes-not-int"),
        pytest.param(7, "arrow-sideways", "expected 'arrow-down'", id="arrow-down-missing"),
        pytest.param(6, "9" * 5000, "upvote count", id="absurdly-long-number"),
    ],
)
def test_malformed_votes(line_no: int, replacement: str, fragment: str) -> None:
    lines = corpus_text().split("\n")
    lines[line_no - 1] = "    " + replacement
    source = "\n".join(lines)
    with pytest.raises(ThreadParseError) as err:
        parse_thread(source)
    message = str(err.value)
    assert message.startswith(f"line {line_no}: ")
    assert fragment in message
    assert "\n" not in message
    assert err.value.line == line_no


def test_metadata_cut_short() -> None:
    source = "  • a@b.c\n    arrow-up\n    5\n\n    Body\n"
    with pytest.raises(ThreadParseError, match=r"^line 1: .*ends after 'upvote count'"):
        parse_thread(source)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("", id="empty"),
        pytest.param("Just some prose.\n\nAnother paragraph about arrow-up votes.\n", id="prose"),
        pytest.param(corpus_text().replace("•", "*"), id="no-bullets"),
        pytest.param("Write to\n• press@example.com\n• desk@example.org\n", id="bulleted-addresses"),
        pytest.param(
            "  • a@b.c\n\n    arrow-up\n    1\n    arrow-down\n    0\n", id="blank-line-before-votes"
        ),
        pytest.param("arrow-up\n1\narrow-down\n0\n", id="votes-without-header"),
    ],
)
def test_not_a_thread(source: str) -> None:
    assert not looks_like_thread(source)
    with pytest.raises(ThreadParseError, match=r"^no Lemmy comment found"):
        parse_thread(source)


# ------------------------------------------------------------------------------ property tests

LINE_CHARS = st.characters(exclude_categories=("Cs", "Cc"))
TEXT_LINE = (
    st.text(LINE_CHARS, min_size=1, max_size=30)
    .map(str.strip)
    .filter(lambda s: bool(s) and not s.startswith(("•", "\ufeff")))
)
PARAGRAPH = st.lists(TEXT_LINE, min_size=1, max_size=3)
NAME = st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)
INSTANCE = st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,8}", fullmatch=True), min_size=1, max_size=3).map(
    ".".join
)
AGE = st.one_of(
    st.sampled_from(["just now", "an hour ago", "a day ago", "1 year ago", "vor 5 Monaten"]),
    st.builds(
        "{} {} ago".format,
        st.integers(2, 59),
        st.sampled_from(["minutes", "hours", "days", "weeks", "months", "years"]),
    ),
)


@dataclass(frozen=True)
class Expected:
    author: str
    is_op: bool
    upvotes: int
    downvotes: int
    edited: bool
    age: str
    depth: int
    parent: int | None
    start: int | None  # for an empty body; otherwise checked through text
    text: str
    paragraphs: list[str]


@st.composite
def well_formed_threads(draw: st.DrawFn) -> tuple[str, tuple[int, int] | None, list[Expected]]:
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    base = draw(st.integers(0, 4))
    count = draw(st.integers(1, 6))
    depths = [0]
    for _ in range(count - 1):
        depths.append(draw(st.integers(0, depths[-1] + 1)))

    source = ""
    preamble: tuple[int, int] | None = None
    pre_lines = draw(st.lists(TEXT_LINE, max_size=3))
    if pre_lines:
        pre_text = eol.join(pre_lines)
        source = pre_text + eol + eol
        preamble = (0, len(pre_text))

    expected: list[Expected] = []
    chain: list[int] = []  # ancestors of the next comment, by index
    for index, depth in enumerate(depths):
        del chain[depth:]
        parent = chain[-1] if chain else None
        chain.append(index)
        author = f"{draw(NAME)}@{draw(INSTANCE)}"
        is_op, edited = draw(st.booleans()), draw(st.booleans())
        up, down = draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))
        age = draw(AGE)
        pre_meta = draw(
            st.sampled_from([[], ["English"], ["link", "fedilink"], ["link", "fedilink", "English"]])
        )
        ind = " " * (base + 2 * depth)
        meta_ind = ind + "  "
        meta = [*pre_meta, "arrow-up", str(up), "arrow-down", str(down), "·"]
        meta += ["edit-2"] if edited else []
        meta += [age]
        source += f"{ind}• {author}{'OP' if is_op else ''}{eol}"
        source += "".join(meta_ind + m + eol for m in meta)
        after_meta = len(source)
        source += eol
        paras = draw(st.lists(PARAGRAPH, max_size=3))
        para_texts = [(eol + meta_ind).join(p) for p in paras]
        blank = draw(st.sampled_from(["", meta_ind]))
        text = (eol + blank + eol + meta_ind).join(para_texts)
        if paras:
            source += meta_ind + text + eol + eol
        expected.append(
            Expected(author, is_op, up, down, edited, age, depth, parent, after_meta, text, para_texts)
        )
    if draw(st.booleans()):
        source = source.rstrip("\r\n")
    return source, preamble, expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(well_formed_threads())
def test_round_trip_well_formed_threads(case: tuple[str, tuple[int, int] | None, list[Expected]]) -> None:
    source, preamble, expected = case
    assert looks_like_thread(source)
    thread = parse_thread(source)
    assert thread.preamble == preamble
    assert len(thread.comments) == len(expected)
    for i, (c, e) in enumerate(zip(thread.comments, expected, strict=True)):
        assert c.index == i
        assert (c.author, c.is_op, c.upvotes, c.downvotes, c.edited, c.age) == (
            e.author,
            e.is_op,
            e.upvotes,
            e.downvotes,
            e.edited,
            e.age,
        )
        assert (c.depth, c.parent) == (e.depth, e.parent)
        assert c.score == e.upvotes - e.downvotes
        assert c.text == e.text
        assert source[c.start : c.end] == c.text
        if not e.text:
            assert e.start is not None
            assert c.start == c.end == min(e.start, len(source))
        assert [source[s:e] for s, e in c.paragraphs()] == e.paragraphs


THREADISH_LINE = st.one_of(
    st.sampled_from(
        ["", "  ", "link", "fedilink", "English", "arrow-up", "arrow-down", "·", "edit-2", "5 months ago"]
    ),
    st.integers(-5, 10**4).map(str),
    st.builds(
        "{}• {}@{}{}".format,
        st.sampled_from(["", "  ", "    ", "   ", "\u00a0"]),
        NAME,
        INSTANCE,
        st.sampled_from(["", "OP"]),
    ),
    st.text(max_size=20),
).flatmap(lambda line: st.sampled_from(["", "  ", "    "]).map(lambda ind: ind + line))


def _mutated_corpus(draw: st.DrawFn) -> str:
    lines = corpus_text().split("\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "replace", "duplicate"]))
        if action == "drop":
            del lines[i]
        elif action == "replace":
            lines[i] = draw(THREADISH_LINE)
        else:
            lines.insert(i, lines[i])
        if not lines:
            break
    return draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)


ANY_TEXT = st.one_of(
    st.text(),
    st.lists(THREADISH_LINE, max_size=40).flatmap(
        lambda lines: st.sampled_from(["\n", "\r\n"]).map(lambda eol: eol.join(lines))
    ),
    st.composite(_mutated_corpus)(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_TEXT)
def test_parse_never_raises_anything_but_thread_parse_error(source: str) -> None:
    looks_like_thread(source)  # must not raise either
    try:
        thread = parse_thread(source)
    except ThreadParseError as err:
        assert "\n" not in str(err)
        return
    assert thread.comments
    check_spans(source, thread)
    for i, c in enumerate(thread.comments):
        assert isinstance(c, Comment)
        assert c.index == i and c.depth >= 0
        if c.parent is not None:
            assert 0 <= c.parent < i
            assert thread.comments[c.parent].depth == c.depth - 1
        elif i == 0:
            assert c.parent is None
