"""evals/dataset.py and evals/metrics.py on small hand-made cases: pure and fast (no model, no index).

Every expected value below is computed by hand from the definitions in the evals/metrics.py docstring.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evals.dataset import DatasetError, EvalCase, load_dataset, normalize, quotes_not_in_corpus
from evals.metrics import (
    METRIC_NAMES,
    CaseScore,
    Sentence,
    citation_scores,
    evidence_recall,
    fact_matches,
    fact_recall,
    gold_citations,
    percentile,
    quote_matches_gold,
    reciprocal_rank,
    summarize,
)
from rag.index.lexical import tokenize
from rag.types import Answer, Citation, Passage, Turn

GOOD: dict[str, Any] = {
    "id": "c1",
    "question": "How much was the deal?",
    "answerable": True,
    "facts": [["£3m", "3 million"], ["2019"]],
    "evidence": ["signing a £3m deal with the university in 2019"],
}
UNANSWERABLE: dict[str, Any] = {
    "id": "u1",
    "question": "What is Jari's annual revenue?",
    "answerable": False,
    "facts": [],
    "evidence": [],
}


def case(facts: list[list[str]] | None = None, evidence: list[str] | None = None) -> EvalCase:
    return EvalCase("c", "q?", True, facts or [], evidence or [])


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def without(base: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k != key}


# ---------------------------------------------------------------------------------------------------
# dataset validation


MALFORMED: list[tuple[str, str, str]] = [
    # (test id, the bad line, a piece of the reason)
    ("not-json", '{"id": "c2", "question": ', "not valid JSON"),
    ("not-json-trailing-comma", '{"id": "c2",}', "not valid JSON"),
    ("array-not-object", '["c2", "question"]', "a case must be a JSON object"),
    ("string-not-object", '"just a string"', "a case must be a JSON object"),
    ("missing-evidence", json.dumps(without(with_(GOOD, id="c2"), "evidence")), "missing key(s): evidence"),
    (
        "missing-several",
        json.dumps({"id": "c2", "question": "q?"}),
        "missing key(s): answerable, evidence, facts",
    ),
    ("unknown-key", json.dumps(with_(GOOD, id="c2", answer="x")), "unknown key(s): answer"),
    ("id-not-string", json.dumps(with_(GOOD, id=2)), "'id' must be a non-empty string"),
    ("id-blank", json.dumps(with_(GOOD, id="  ")), "'id' must be a non-empty string"),
    (
        "question-empty",
        json.dumps(with_(GOOD, id="c2", question="")),
        "'question' must be a non-empty string",
    ),
    ("question-not-string", json.dumps(with_(GOOD, id="c2", question=["q"])), "'question' must be"),
    (
        "answerable-string",
        json.dumps(with_(GOOD, id="c2", answerable="yes")),
        "'answerable' must be true or false",
    ),
    ("answerable-int", json.dumps(with_(GOOD, id="c2", answerable=1)), "'answerable' must be true or false"),
    ("facts-string", json.dumps(with_(GOOD, id="c2", facts="£3m")), "'facts' must be a list"),
    ("facts-flat-list", json.dumps(with_(GOOD, id="c2", facts=["£3m"])), "'facts' must be a list"),
    ("facts-number", json.dumps(with_(GOOD, id="c2", facts=[["£3m", 3]])), "'facts' must be a list"),
    ("facts-empty-group", json.dumps(with_(GOOD, id="c2", facts=[["2019"], []])), "non-empty lists"),
    ("evidence-string", json.dumps(with_(GOOD, id="c2", evidence="a quote")), "'evidence' must be a list"),
    ("evidence-empty-quote", json.dumps(with_(GOOD, id="c2", evidence=[""])), "'evidence' must be a list"),
    (
        "answerable-without-facts",
        json.dumps(with_(GOOD, id="c2", facts=[])),
        "an answerable case needs at least one fact group",
    ),
    (
        "unanswerable-with-facts",
        json.dumps(with_(UNANSWERABLE, facts=[["x"]])),
        "an unanswerable case has no facts and no evidence",
    ),
    (
        "unanswerable-with-evidence",
        json.dumps(with_(UNANSWERABLE, evidence=["a quote"])),
        "an unanswerable case has no facts and no evidence",
    ),
    ("history-not-list", json.dumps(with_(GOOD, id="c2", history={"role": "user"})), "'history' must be"),
    (
        "history-bad-role",
        json.dumps(with_(GOOD, id="c2", history=[{"role": "system", "content": "x"}])),
        "history turn 1 must be",
    ),
    (
        "history-missing-content",
        json.dumps(with_(GOOD, id="c2", history=[{"role": "user", "content": "hi"}, {"role": "assistant"}])),
        "history turn 2 must be",
    ),
    (
        "history-content-not-string",
        json.dumps(with_(GOOD, id="c2", history=[{"role": "user", "content": ["hi"]}])),
        "history turn 1 must be",
    ),
    ("history-turn-string", json.dumps(with_(GOOD, id="c2", history=["hello"])), "history turn 1 must be"),
    ("duplicate-id", json.dumps(with_(GOOD, question="Another question?")), "duplicate id 'c1'"),
    ("tags-string", json.dumps(with_(GOOD, id="c2", tags="number")), "'tags' must be a list"),
    ("tags-number", json.dumps(with_(GOOD, id="c2", tags=["number", 3])), "'tags' must be a list"),
    ("tags-empty-tag", json.dumps(with_(GOOD, id="c2", tags=["number", " "])), "'tags' must be a list"),
    ("tags-null", json.dumps(with_(GOOD, id="c2", tags=None)), "'tags' must be a list"),
    ("tag-key-misspelt", json.dumps(with_(GOOD, id="c2", tag=["number"])), "unknown key(s): tag"),
]


@pytest.mark.parametrize(("line", "reason"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_line_names_file_line_and_reason(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "cases.jsonl"
    # A good case, a blank line (skipped but counted), then the bad line: line 3.
    path.write_text(json.dumps(GOOD) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: "), message
    assert reason in message
    assert "\n" not in message


def test_first_bad_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    lines = [json.dumps(GOOD), "not json", json.dumps(with_(GOOD, id=5))]
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DatasetError, match=r":2: not valid JSON"):
        load_dataset(path)


@pytest.mark.parametrize("text", ["", "\n", "  \n\n \t\n"], ids=["empty", "newline", "blank-lines"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert str(info.value) == f"{path}: no cases"


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(DatasetError, match="cannot read") as info:
        load_dataset(missing)
    assert str(info.value).startswith(f"{missing}: ")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(binary)


def test_good_file_loads_with_and_without_history(tmp_path: Path) -> None:
    history = [
        {"role": "user", "content": "What deal did Jari sign?"},
        {"role": "assistant", "content": "A £3m deal with Imperial."},
    ]
    followup = {
        "evidence": ["the £500,000 of funding that had been received was returned"],
        "facts": [["£500,000", "500,000"]],
        "answerable": True,
        "history": history,
        "question": "How much was returned?",
        "id": "fu",
    }
    path = tmp_path / "good.jsonl"
    lines = [json.dumps(GOOD), "", json.dumps(followup, ensure_ascii=False), json.dumps(UNANSWERABLE), ""]
    path.write_text("\n".join(lines), encoding="utf-8")

    cases = load_dataset(path)

    assert [c.id for c in cases] == ["c1", "fu", "u1"]
    first, second, third = cases
    assert first == EvalCase(
        "c1",
        "How much was the deal?",
        True,
        [["£3m", "3 million"], ["2019"]],
        ["signing a £3m deal with the university in 2019"],
        [],
    )
    assert first.history == []
    assert second.question == "How much was returned?"
    assert second.facts == [["£500,000", "500,000"]]
    assert second.evidence == ["the £500,000 of funding that had been received was returned"]
    assert second.history == [
        Turn("user", "What deal did Jari sign?"),
        Turn("assistant", "A £3m deal with Imperial."),
    ]
    assert third == EvalCase("u1", "What is Jari's annual revenue?", False, [], [], [])


def test_tags_are_optional_and_kept_in_order(tmp_path: Path) -> None:
    path = tmp_path / "tagged.jsonl"
    lines = [
        json.dumps(with_(GOOD, tags=["number", "money", "follow-up"])),
        json.dumps(with_(UNANSWERABLE, tags=[])),
        json.dumps(with_(GOOD, id="c3")),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tagged, untagged, missing = load_dataset(path)
    assert tagged.tags == ["number", "money", "follow-up"]
    assert untagged.tags == [] and missing.tags == []
    assert tagged == EvalCase(
        "c1", GOOD["question"], True, GOOD["facts"], GOOD["evidence"], [], ["number", "money", "follow-up"]
    )


def test_explicit_empty_history_equals_missing_history(tmp_path: Path) -> None:
    path = tmp_path / "good.jsonl"
    path.write_text(json.dumps(with_(GOOD, history=[])) + "\n", encoding="utf-8")
    (loaded,) = load_dataset(path)
    assert loaded.history == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("China’s “smart  military\nbases”", 'china\'s "smart military bases"'),
        ("  ‘Quoted’\u00a0text\t", "'quoted' text"),
        ("ALREADY plain", "already plain"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_quotes_not_in_corpus_reports_exactly_the_missing_quotes() -> None:
    corpus = [
        "The company, which is the leading designer of China’s drone warships, shared this objective.",
        'Jari wanted AI for potential use in "smart military bases", the Guardian has learned.\n\n'
        "A Mandarin-language email from Jari’s research director to an Imperial College professor.",
    ]
    cases = [
        EvalCase(
            "straight-vs-curly",
            "q?",
            True,
            [["x"]],
            [
                "leading designer of China's drone warships",  # straight apostrophe; corpus has a curly one
                "use in “smart military bases”",  # curly quotes; corpus has straight ones
            ],
        ),
        EvalCase(
            "whitespace",
            "q?",
            True,
            [["x"]],
            ["the   Guardian has\nlearned.  A Mandarin-language email", "  JARI’S RESEARCH DIRECTOR "],
        ),
        EvalCase(
            "missing",
            "q?",
            True,
            [["x"]],
            [
                "Our universities are like lambs to the slaughter.",
                "drone warships",
                "shared this objective. Jari wanted AI",  # spans two documents: not in any one of them
            ],
        ),
        EvalCase("unanswerable", "q?", False, [], []),
    ]
    assert quotes_not_in_corpus(cases, corpus) == [
        ("missing", "Our universities are like lambs to the slaughter."),
        ("missing", "shared this objective. Jari wanted AI"),
    ]
    assert quotes_not_in_corpus(cases[:2], corpus) == []
    assert quotes_not_in_corpus(cases[:1], []) == [
        ("straight-vs-curly", "leading designer of China's drone warships"),
        ("straight-vs-curly", "use in “smart military bases”"),
    ]


# ---------------------------------------------------------------------------------------------------
# fact recall

DEAL = case(facts=[["security risk"], ["academic tie-ups", "tie-ups with China"]])
SMART = case(facts=[["“smart military bases”"], ["China’s drone warships"]])
THREE = case(facts=[["£3m"], ["2019"], ["two Imperial employees"]])


@pytest.mark.parametrize(
    ("eval_case", "answer", "refused", "expected"),
    [
        pytest.param(DEAL, "A security risk posed by academic tie-ups.", False, 1.0, id="first-alternatives"),
        pytest.param(DEAL, "A security risk from tie-ups with China.", False, 1.0, id="second-alternative"),
        pytest.param(DEAL, "SECURITY RISK and Academic Tie-Ups", False, 1.0, id="case-insensitive"),
        pytest.param(DEAL, "Concerns about security\n  risk.", False, 0.5, id="whitespace-partial"),
        pytest.param(DEAL, "It is a security risk.", False, 0.5, id="partial"),
        pytest.param(DEAL, "Nothing relevant here.", False, 0.0, id="none"),
        pytest.param(DEAL, "", False, 0.0, id="empty-answer"),
        pytest.param(DEAL, "security risk, academic tie-ups", True, 0.0, id="refused-scores-0"),
        pytest.param(
            SMART, 'for "smart military bases" and China\'s drone warships', False, 1.0, id="quotes"
        ),
        pytest.param(SMART, "smart military bases", False, 0.0, id="quotes-are-part-of-the-fact"),
        pytest.param(THREE, "a £3m deal in 2019", False, 2 / 3, id="two-of-three"),
        pytest.param(THREE, "In 2019.", False, 1 / 3, id="one-of-three"),
    ],
)
def test_fact_recall(eval_case: EvalCase, answer: str, refused: bool, expected: float) -> None:
    assert fact_recall(eval_case, answer, refused) == pytest.approx(expected)


# (alternative, answer, matches?): whole words, numbers as numbers, normalized like evals.dataset.normalize.
FACT_MATCHES: list[tuple[str, str, bool]] = [
    # numbers are not found inside other numbers
    ("26", "It rose to 26 people.", True),
    ("26", "It rose to 260 people.", False),
    ("26", "It took 26.5 hours.", False),
    ("26", "It took 0.26 hours.", False),
    ("26", "There were 1,260 staff.", False),
    ("26", "In 2026.", False),
    ("26", "It was 26.", True),  # a full stop, not a decimal point
    ("26", "It was 26, then 27.", True),  # a comma, not a thousands separator
    ("26", "up 26% (26)", True),
    ("26", "the 26th", False),
    # thousands separators
    ("1,000", "paid 1000 pounds", True),
    ("1000", "paid £1,000 in all", True),
    ("1,000", "paid 11,000", False),
    ("1,000", "paid 1,000,000", False),
    ("£1,260,000", "£1260000", True),
    ("2019", "in 2019, 2020", True),
    ("2019", "in 2019,2020", False),  # not a thousands separator, so maybe a decimal comma: no match
    ("26", "26,5 kg", False),
    # currency and units
    ("£3m", "a £3m deal", True),
    ("£3m", "a deal worth £3m.", True),
    ("£3m", "a £13m deal", False),
    ("£3m", "a £3million deal", False),
    ("3m", "a £3m deal", True),
    ("3 million", "£3 million", True),
    ("3 million", "13 million", False),
    # words are not found inside other words
    ("two", "the network failed", False),
    ("two", "Two Imperial employees", True),
    ("art", "the article", False),
    ("Guo", "Guo’s papers", True),
    ("tie-ups", "academic tie-ups with China", True),
    ("Imperial.", "Imperial.", True),
    # case, quotes and whitespace
    ("Imperial College", "IMPERIAL COLLEGE London", True),
    ("China’s", "China's drone warships", True),
    ("China's", "China’s drone warships", True),
    ("“smart military bases”", 'for "smart military bases"', True),
    ("“smart military bases”", "for smart military bases", False),  # the quotes are part of the fact
    ("security risk", "security\n   risk", True),
    ("security  risk", "security risk", True),
    # citation markers are removed from the answer first
    ("£3m", "worth £3m [1].", True),
    ("worth £3m.", "worth £3m [1].", True),
    ("deal worth", "the deal [2] worth", True),
    ("deal worth", "the deal [1, 2] worth", True),
    ("deal worth", "the deal [1][2] worth", True),
    ("26", "was 2[1]6", False),  # removing a marker never glues two words into one fact
    # nothing matches nothing
    ("26", "", False),
    ("  ", "anything", False),
]


@pytest.mark.parametrize(
    ("alternative", "answer", "expected"),
    FACT_MATCHES,
    ids=[f"{a!r}-in-{t!r}" for a, t, _ in FACT_MATCHES],
)
def test_fact_matches(alternative: str, answer: str, expected: bool) -> None:
    assert fact_matches(alternative, answer) is expected


# Facts and answer words: printable text without whitespace and without the brackets of citation markers.
_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="[]")
WORDS = st.lists(st.text(_CHARS, min_size=1, max_size=8), max_size=6)
FACT = st.lists(st.text(_CHARS, min_size=1, max_size=8), min_size=1, max_size=3).map(" ".join)
SPACE = st.sampled_from([" ", "  ", "\n", "\t ", "\u00a0"])


@settings(max_examples=300)
@given(before=WORDS, fact=FACT, after=WORDS, space=SPACE)
def test_a_fact_standing_alone_always_matches(
    before: list[str], fact: str, after: list[str], space: str
) -> None:
    assert fact_matches(fact, space.join([*before, fact, *after]))


@settings(max_examples=300)
@given(
    n=st.integers(0, 10**9),
    digit=st.sampled_from("0123456789"),
    decimals=st.integers(0, 99),
    thousands=st.integers(1, 999),
)
def test_numbers_match_as_numbers(n: int, digit: str, decimals: int, thousands: int) -> None:
    assert fact_matches(str(n), f"it was {n:,} in all")  # 1260 in 1,260
    assert fact_matches(f"{n:,}", f"it was {n} in all")  # 1,260 in 1260
    assert fact_matches(f"{n:,}", f"it was {n:,}.")
    assert not fact_matches(str(n), f"it was {n}{digit} in all")  # 26 not in 260
    assert not fact_matches(str(n), f"it was {digit}{n} in all")  # 26 not in 126
    assert not fact_matches(str(n), f"it was {n}.{decimals} in all")  # 26 not in 26.5
    assert not fact_matches(str(n), f"it was {decimals}.{n} in all")  # 26 not in 0.26
    if n < 1000:
        assert not fact_matches(str(n), f"it was {thousands},{n:03d} in all")  # 260 not in 1,260


@settings(max_examples=300)
@given(
    words=st.lists(
        st.text(st.sampled_from("abcXYZ019£%'’.,-"), min_size=1, max_size=5), min_size=1, max_size=8
    ),
    fact=st.text(st.sampled_from("abcXYZ019£%'’., -"), min_size=1, max_size=8),
    markers=st.lists(st.sampled_from(["", "", " [1]", "[2]", " [1, 3]"]), min_size=8, max_size=8),
    spaces=st.lists(SPACE, min_size=8, max_size=8),
)
def test_case_spaces_and_markers_do_not_change_a_match(
    words: list[str], fact: str, markers: list[str], spaces: list[str]
) -> None:
    plain = " ".join(words)
    noisy = "".join(w.upper() + m + s for w, m, s in zip(words, markers, spaces, strict=False))
    assert fact_matches(fact, noisy) == fact_matches(fact, plain)
    assert fact_matches(fact.upper(), plain) == fact_matches(fact, plain)


@settings(max_examples=200)
@given(
    groups=st.lists(st.lists(FACT, min_size=1, max_size=3), min_size=1, max_size=5),
    answer=st.text(),
    refused=st.booleans(),
)
def test_fact_recall_property(groups: list[list[str]], answer: str, refused: bool) -> None:
    eval_case = case(facts=groups)
    assert 0.0 <= fact_recall(eval_case, answer, refused) <= 1.0
    covering = " ".join(group[0] for group in groups)
    assert fact_recall(eval_case, covering, False) == 1.0
    assert fact_recall(eval_case, covering, True) == 0.0


def test_fact_recall_casefolds() -> None:
    # casefold, not lower: a final sigma (ς) and a capital sigma (Σ) are the same letter
    assert fact_recall(case(facts=[["ΟΔΟΣ"]]), "Η οδος [1].", False) == 1.0
    assert fact_recall(case(facts=[["Straße"]]), "STRASSE", False) == 1.0


# ---------------------------------------------------------------------------------------------------
# evidence recall@k and MRR

FUNDING = case(
    facts=[["x"]],
    evidence=[
        "the partnership was ultimately terminated in 2021",
        "the £500,000 of funding that had been received was returned",
    ],
)
NOISE = "Guo declined to comment on the Jari partnership."
HOLDS_FIRST = (
    "However, the partnership was ultimately\nterminated in 2021. Imperial said no research went ahead."
)
HOLDS_SECOND = "Imperial said the £500,000 of funding that had been received was returned in October 2021."
HOLDS_BOTH = "However, the Partnership was ultimately terminated in 2021. " + HOLDS_SECOND


@pytest.mark.parametrize(
    ("retrieved", "k", "expected"),
    [
        pytest.param([NOISE, HOLDS_FIRST, HOLDS_SECOND], 1, 0.0, id="k1-none"),
        pytest.param([NOISE, HOLDS_FIRST, HOLDS_SECOND], 2, 0.5, id="k2-one-of-two"),
        pytest.param([NOISE, HOLDS_FIRST, HOLDS_SECOND], 3, 1.0, id="k3-both"),
        pytest.param([NOISE, HOLDS_FIRST, HOLDS_SECOND], 50, 1.0, id="k-beyond-list"),
        pytest.param([HOLDS_BOTH, NOISE], 1, 1.0, id="one-passage-holds-both"),
        pytest.param([HOLDS_FIRST, HOLDS_FIRST, NOISE], 3, 0.5, id="same-quote-twice-counts-once"),
        pytest.param([NOISE, NOISE], 5, 0.0, id="none-retrieved"),
        pytest.param([], 5, 0.0, id="nothing-retrieved"),
    ],
)
def test_evidence_recall(retrieved: list[str], k: int, expected: float) -> None:
    assert evidence_recall(FUNDING, retrieved, k) == pytest.approx(expected)


def test_evidence_recall_normalizes_quotes() -> None:
    curly = case(facts=[["x"]], evidence=['designer of China\'s drone warships, "shared" this'])
    assert (
        evidence_recall(curly, ["the leading designer of China’s drone\nwarships, “shared” this"], 1) == 1.0
    )


@pytest.mark.parametrize(
    ("retrieved", "expected"),
    [
        pytest.param([HOLDS_SECOND, NOISE, NOISE], 1.0, id="rank-1"),
        pytest.param([NOISE, NOISE, HOLDS_FIRST, HOLDS_SECOND], 1 / 3, id="rank-3"),
        pytest.param(
            [NOISE, "the PARTNERSHIP was ultimately terminated in 2021"], 0.5, id="rank-2-normalized"
        ),
        pytest.param([NOISE, NOISE, NOISE], 0.0, id="none"),
        pytest.param([], 0.0, id="empty"),
    ],
)
def test_reciprocal_rank(retrieved: list[str], expected: float) -> None:
    assert reciprocal_rank(FUNDING, retrieved) == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------------
# citation recall and precision (ALCE)


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def word_support(sentence: str, passages: Sequence[Passage]) -> bool:
    """A fake judge: supported when every word of the sentence appears in the cited passages together."""
    return bool(passages) and _words(sentence) <= _words(" ".join(p.text for p in passages))


SIGNED = Passage("p-signed", "Jari signed a deal with Imperial in 2019.", {"source": "a.md"})
WORTH = Passage("p-worth", "The deal was worth £3m.", {"source": "a.md"})
WEATHER = Passage("p-weather", "It was sunny in London.", {"source": "b.md"})


@pytest.mark.parametrize(
    ("sentences", "expected"),
    [
        pytest.param(
            [Sentence("Jari signed a deal in 2019.", [SIGNED]), Sentence("The deal was worth £3m.", [WORTH])],
            (1.0, 2.0, 2),
            id="all-supported",
        ),
        pytest.param(
            [Sentence("Jari signed a deal in 2019.", [SIGNED]), Sentence("The deal was worth £3m.", [])],
            (0.5, 1.0, 1),
            id="sentence-without-citation",
        ),
        pytest.param(
            [Sentence("Jari signed a deal in 2019.", [SIGNED, WEATHER])],
            (1.0, 1.0, 2),
            id="irrelevant-extra-citation",
        ),
        pytest.param(
            [Sentence("Jari signed a deal worth £3m.", [SIGNED, WORTH])],
            (1.0, 2.0, 2),
            id="two-citations-needed-together",
        ),
        pytest.param(
            [Sentence("Jari signed a deal worth £3m.", [SIGNED, WORTH, WEATHER])],
            (1.0, 2.0, 3),
            id="needed-pair-plus-irrelevant",
        ),
        pytest.param(
            [Sentence("Jari signed a deal in 2019.", [SIGNED, SIGNED])],
            (1.0, 2.0, 2),
            id="redundant-citations-each-support-alone",
        ),
        pytest.param(
            [Sentence("Jari built drone warships.", [SIGNED, WEATHER])],
            (0.0, 0.0, 2),
            id="unsupported-sentence-no-credit",
        ),
        pytest.param(
            [
                Sentence("Jari signed a deal in 2019.", [SIGNED]),
                Sentence("Jari built drone warships.", [WORTH]),
                Sentence("It was sunny in London.", [WEATHER]),
                Sentence("Nobody knows why.", []),
            ],
            (0.5, 2.0, 3),
            id="mixed",
        ),
        pytest.param([], (0.0, 0.0, 0), id="no-sentences"),
    ],
)
def test_citation_scores(sentences: list[Sentence], expected: tuple[float, float, int]) -> None:
    recall, precise, total = citation_scores(sentences, word_support)
    assert (recall, precise, total) == (pytest.approx(expected[0]), expected[1], expected[2])


def test_fake_judge_is_what_the_table_assumes() -> None:
    assert word_support("Jari signed a deal worth £3m.", [SIGNED, WORTH])
    assert not word_support("Jari signed a deal worth £3m.", [SIGNED])
    assert not word_support("Jari signed a deal worth £3m.", [WORTH])
    assert not word_support("Jari signed a deal in 2019.", [WEATHER])
    assert not word_support("anything", [])


# ---------------------------------------------------------------------------------------------------
# citation precision against the gold evidence

GOLD = "Jari signed a deal with Imperial in 2019."  # content words: jari sign deal imperi 2019


def test_content_words_are_what_the_gold_table_assumes() -> None:
    assert set(tokenize(GOLD)) == set(tokenize("jari signed deal imperial 2019"))
    assert len(set(tokenize(GOLD))) == 5
    assert len(set(tokenize("In 2019 Jari signed an agreement."))) == 4  # 2019 jari sign agreement
    assert len(set(tokenize("The deal was worth £3m."))) == 3  # deal worth 3m
    assert tokenize("It was what it was.") == []


@pytest.mark.parametrize(
    ("quote", "gold", "expected"),
    [
        pytest.param(GOLD, GOLD, True, id="identical"),
        pytest.param("JARI  signed a deal\nwith Imperial in 2019.", GOLD, True, id="case-and-whitespace"),
        pytest.param("China’s “smart” bases", 'China\'s "smart" bases', True, id="curly-vs-straight"),
        pytest.param("signed a deal with Imperial", GOLD, True, id="quote-inside-gold"),
        pytest.param(
            "Emails show it. " + GOLD + " The deal was worth £3m.", GOLD, True, id="gold-inside-quote"
        ),
        # shorter: the quote (33 chars), 4 content words; shared: 2019 jari sign = 3 >= 0.5 * 4
        pytest.param("In 2019 Jari signed an agreement.", GOLD, True, id="overlap-3-of-4"),
        # shorter: the quote, 3 content words; shared: deal = 1 < 0.5 * 3
        pytest.param("The deal was worth £3m.", GOLD, False, id="overlap-1-of-3"),
        # shorter: the quote, 2 content words (deal worth); shared: deal = 1 >= 0.5 * 2
        pytest.param("The deal was worth it.", GOLD, True, id="overlap-exactly-half"),
        # shorter: the gold (23 chars), 3 content words (end 2019 earli); shared: 2019 = 1 < 1.5
        pytest.param(GOLD, "It ended in 2019 early.", False, id="gold-shorter-1-of-3"),
        pytest.param("It was sunny in London.", GOLD, False, id="unrelated"),
        pytest.param("It was what it was", "It was what it was not.", True, id="contained-stopwords-only"),
        pytest.param("It was so.", "It is what it is.", False, id="no-content-words"),
        pytest.param("", GOLD, False, id="empty-quote"),
        pytest.param("   ", GOLD, False, id="blank-quote"),
    ],
)
def test_quote_matches_gold(quote: str, gold: str, expected: bool) -> None:
    assert quote_matches_gold(quote, gold) is expected
    assert quote_matches_gold(gold, quote) is expected  # symmetric


@settings(max_examples=200)
@given(
    gold=st.text(min_size=1).filter(lambda t: normalize(t)), cut=st.integers(0, 50), width=st.integers(1, 50)
)
def test_a_piece_of_the_gold_quote_matches_it(gold: str, cut: int, width: int) -> None:
    piece = normalize(gold)[cut : cut + width]
    if piece.strip():
        assert quote_matches_gold(piece, gold)
        assert quote_matches_gold(gold, piece)


def test_gold_citations_counts_each_citation_once() -> None:
    eval_case = case(facts=[["2019"]], evidence=[GOLD, "The deal was worth £3m."])
    quotes = [GOLD, "The deal was worth £3m.", "It was sunny in London.", "signed a deal with Imperial"]
    assert gold_citations(eval_case, quotes) == (3, 4)
    assert gold_citations(eval_case, []) == (0, 0)
    assert gold_citations(case(facts=[["x"]]), quotes) == (0, 4)  # no gold evidence: nothing matches


def _answer(text: str, quotes: list[str], refused: bool = False) -> Answer:
    passages = [Passage(f"p{i}", q, {"source": "a.md"}) for i, q in enumerate(quotes, 1)]
    citations = [Citation(i, p, p.text, 0, len(p.text)) for i, p in enumerate(passages, 1)]
    return Answer("q?", text, citations, refused, retrieved=passages)


@pytest.mark.parametrize(
    ("answerable", "evidence", "refused", "expected"),
    [
        pytest.param(True, [GOLD], False, (1, 2), id="answered-with-gold"),
        pytest.param(True, [], False, (0, 0), id="no-gold-evidence"),
        pytest.param(True, [GOLD], True, (0, 0), id="refused"),
        pytest.param(False, [], False, (0, 0), id="unanswerable-answered"),
    ],
)
def test_score_case_counts_gold_citations(
    answerable: bool, evidence: list[str], refused: bool, expected: tuple[int, int]
) -> None:
    from evals.runner import score_case

    eval_case = EvalCase("c", "q?", answerable, [["2019"]] if answerable else [], evidence)
    answer = _answer(
        "Jari signed a deal with Imperial in 2019 [1]. The deal was worth £3m [2].",
        [GOLD, "The deal was worth £3m."],
        refused,
    )
    scored = score_case(eval_case, answer, 5, word_support)
    assert (scored.gold_matched, scored.gold_citations) == expected
    assert scored.citations == (0 if refused else 2)


def test_score_case_counts_every_quoted_span_of_a_citation() -> None:
    from evals.runner import score_case

    text = GOLD + " The deal was worth £3m."
    passage = Passage("p1", text, {"source": "a.md"})
    both = Citation(1, passage, GOLD, 0, len(GOLD)).with_span(len(GOLD) + 1, len(text))
    assert both.quotes == [GOLD, "The deal was worth £3m."]
    answer = Answer("q?", "Jari signed a deal with Imperial in 2019; it was worth £3m [1].", [both])
    scored = score_case(case(facts=[["2019"]], evidence=[GOLD]), answer, 5, word_support)
    assert (scored.gold_matched, scored.gold_citations) == (1, 2)  # the £3m span is not gold evidence


# ---------------------------------------------------------------------------------------------------
# percentiles and the summary

ONE_TO_TWENTY = [float(v) for v in range(20, 0, -1)]  # unsorted on purpose


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        pytest.param(ONE_TO_TWENTY, 50, 10.0, id="p50-of-1..20"),  # rank ceil(0.50 * 20) = 10
        pytest.param(ONE_TO_TWENTY, 95, 19.0, id="p95-of-1..20"),  # rank ceil(0.95 * 20) = 19
        pytest.param(ONE_TO_TWENTY, 100, 20.0, id="p100"),
        pytest.param(ONE_TO_TWENTY, 0, 1.0, id="p0-is-the-minimum"),
        pytest.param([7.0], 95, 7.0, id="single-value"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.0, id="p50-of-four"),  # rank ceil(2.0) = 2
        pytest.param([1.0, 2.0, 3.0, 4.0, 5.0], 50, 3.0, id="p50-of-five"),  # rank ceil(2.5) = 3
        pytest.param([], 50, 0.0, id="empty-p50"),
        pytest.param([], 95, 0.0, id="empty-p95"),
        pytest.param(
            [float(v) for v in range(1, 101)],
            7,
            7.0,  # rank ceil(0.07 * 100) = 7
            id="p7-of-1..100-float-rounding",
        ),
    ],
)
def test_percentile_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def score(
    id: str,
    answerable: bool,
    refused: bool,
    fact: float | None,
    evidence: float | None,
    rr: float | None,
    cit_recall: float | None,
    precise: float,
    citations: int,
    latency: float,
    error: str = "",
    gold: tuple[int, int] = (0, 0),
) -> CaseScore:
    return CaseScore(
        id, answerable, refused, fact, evidence, rr, cit_recall, precise, citations, latency, error, *gold
    )


SCORES = [
    score("a1", True, False, 1.0, 1.0, 1.0, 1.0, 2, 2, 100, gold=(1, 2)),  # passed
    score("a2", True, False, 0.5, 0.5, 0.5, 0.5, 1, 2, 300, gold=(2, 2)),  # partial: not passed
    score("a3", True, True, 0.0, 1.0, 0.0, None, 0, 0, 200),  # false refusal
    score("u1", False, True, None, None, None, None, 0, 0, 50),  # right refusal: passed
    score("u2", False, False, None, None, None, 0.0, 0, 1, 400),  # answered the unanswerable
    score("e1", True, False, None, None, None, None, 0, 0, 999, "RuntimeError: boom", (0, 9)),  # error
]


def test_case_passed() -> None:
    assert [s.passed for s in SCORES] == [True, False, False, True, False, False]
    assert not score("e2", False, True, None, None, None, None, 0, 0, 1, "boom").passed


def test_summarize() -> None:
    summary = summarize(SCORES)
    expected = {
        "cases": 6,
        "errors": 1,
        "fact_recall": (1.0 + 0.5 + 0.0) / 3,  # answerable, no error: a1 a2 a3
        "evidence_recall": (1.0 + 0.5 + 1.0) / 3,
        "mrr": (1.0 + 0.5 + 0.0) / 3,
        "citation_recall": (1.0 + 0.5 + 0.0) / 3,  # answered: a1 a2 u2
        "citation_precision_gold": (1 + 2) / (2 + 2),  # a1 a2; the error's 0/9 is left out
        "citation_precision": (2 + 1 + 0) / (2 + 2 + 1),
        "refusal_rate": 1 / 2,  # unanswerable only: u1 refused, u2 did not
        "false_refusal_rate": 1 / 3,  # answerable only: a3 of a1 a2 a3
        "passed": 2,  # a1 u1
        "latency_p50_ms": 200.0,  # [50 100 200 300 400], rank ceil(2.5) = 3; the error's 999 is left out
        "latency_p95_ms": 400.0,  # rank ceil(4.75) = 5
        "reader_top1": 0.0,  # no case was read
        "cosine_top1": 0.0,
        "reader_auc": 0.0,
    }
    assert summary.keys() == expected.keys()
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value), key
    assert set(METRIC_NAMES) <= summary.keys()  # every name a threshold may use is reported


def test_summarize_nothing() -> None:
    summary = summarize([])
    assert summary["cases"] == summary["errors"] == summary["passed"] == 0
    assert all(v == 0 for v in summary.values())


def test_summarize_only_errors() -> None:
    summary = summarize([SCORES[-1], score("e2", False, False, None, None, None, None, 0, 0, 5, "X: y")])
    assert (summary["cases"], summary["errors"], summary["passed"]) == (2, 2, 0)
    assert summary["refusal_rate"] == summary["false_refusal_rate"] == summary["latency_p95_ms"] == 0.0


def test_the_reader_metrics() -> None:
    """Reader top-1 and cosine top-1 over answerable cases that were read; AUC of the best reader score,
    answerable against unanswerable (ties half)."""
    read = [
        replace(SCORES[0], reader_hit=True, cosine_hit=False, reader_best=0.9),
        replace(SCORES[1], reader_hit=False, cosine_hit=False, reader_best=0.4),
        replace(SCORES[3], reader_best=0.4),  # unanswerable
        replace(SCORES[4], reader_best=0.2),
    ]
    summary = summarize(read)
    assert [SCORES[i].answerable for i in (0, 1, 3, 4)] == [True, True, False, False]
    assert (summary["reader_top1"], summary["cosine_top1"]) == (0.5, 0.0)
    assert summary["reader_auc"] == pytest.approx((1 + 1 + 0.5 + 1) / 4)
