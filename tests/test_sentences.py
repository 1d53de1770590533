from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.text import paragraph_spans, sentence_spans, split_sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two.", ["One.", "Two."]),
        ("Led by Prof. Guo. He left.", ["Led by Prof. Guo.", "He left."]),
        (
            "The U.S. said so. Then e.g. this stays. Yes!",
            ["The U.S. said so.", "Then e.g. this stays.", "Yes!"],
        ),
        ("He asked “why?” Then left.", ["He asked “why?”", "Then left."]),
        (
            "“Could they be used against us?” Parton said. “No.”",
            ["“Could they be used against us?” Parton said.", "“No.”"],
        ),
        ("It cost £3m. £500,000 was returned.", ["It cost £3m.", "£500,000 was returned."]),
        ("no capital after. this stays one", ["no capital after. this stays one"]),
        ("Para one\n\nPara two", ["Para one", "Para two"]),
        ("Line one\nstill one.  Next.", ["Line one\nstill one.", "Next."]),
        ("", []),
        ("   \n\n  ", []),
    ],
)
def test_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_paragraphs_skip_blank_lines_with_spaces() -> None:
    text = "  a b\n    \n\n  c\n"
    assert [text[s:e] for s, e in paragraph_spans(text)] == ["a b", "c"]


@given(st.text(alphabet=st.sampled_from(list("ab. ?!\n”“\"'A£1\t")), max_size=300))
def test_sentence_spans_cover_text(text: str) -> None:
    spans = sentence_spans(text)
    covered = set()
    previous_end = 0
    for s, e in spans:
        assert previous_end <= s < e <= len(text)
        assert text[s:e] == text[s:e].strip()
        covered.update(range(s, e))
        previous_end = e
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
