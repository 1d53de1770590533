"""The answer-time support judges with the real embedding model: the default lexical one, and the
calibrated one with its fitted weights; and the labelled pairs that fit and measure them (evals/support/)."""

from __future__ import annotations

import pytest

from evals.suites import load_suites
from evals.support import PAIRS, perturbed, rates, read
from rag.index.embeddings import Embedder
from rag.settings import AnswerSettings, EmbeddingSettings
from rag.types import Passage
from rag.verify import CalibratedJudge, LexicalEmbeddingJudge

LEAVE = Passage(
    "p1",
    "Annual leave. Full-time employees are entitled to 25 days of paid annual leave each year, plus public "
    "holidays. Unused days cannot be carried over without the approval of your manager. Requests go to "
    "Maria Lopez in the HR office.",
    {"source": "handbook/leave.md"},
)


@pytest.fixture(scope="module")
def judge() -> CalibratedJudge:
    a = AnswerSettings()
    return CalibratedJudge(Embedder(EmbeddingSettings()), a.support_weights, a.support_threshold)


@pytest.fixture(scope="module")
def lexical() -> LexicalEmbeddingJudge:
    return LexicalEmbeddingJudge(Embedder(EmbeddingSettings()))


def test_a_verbatim_quote_is_fully_supported(judge: CalibratedJudge, lexical: LexicalEmbeddingJudge) -> None:
    for each in (judge, lexical):
        support = each.support("Requests go to Maria Lopez in the HR office.", LEAVE)
        assert support.score == 1.0
        assert LEAVE.text[support.start : support.end] == "Requests go to Maria Lopez in the HR office."


def test_the_default_judge_accepts_a_paraphrase_and_quotes_it(lexical: LexicalEmbeddingJudge) -> None:
    support = lexical.support("Full-time staff get 25 days of paid annual leave a year.", LEAVE)
    assert support.score >= lexical.threshold
    assert "25 days" in LEAVE.text[support.start : support.end]


@pytest.mark.parametrize(
    "invented",
    [
        "Full-time employees are entitled to 30 days of paid annual leave each year.",  # a number
        pytest.param(
            "Unused days can be carried over without the approval of your manager.",
            marks=pytest.mark.xfail(
                strict=True, reason="negation is read by presence: 'without' in both hides the dropped 'not'"
            ),
        ),
        "Leave requests go to the HR office, and unused days can be carried over.",  # a negation dropped
        "Requests go to Sarah Connor in the HR office.",  # a name
        "Employees get a company car after five years of service.",  # nothing of the kind
    ],
)
def test_the_calibrated_judge_rejects_invented_details(judge: CalibratedJudge, invented: str) -> None:
    assert judge.support(invented, LEAVE).score < judge.threshold


def test_weights_must_match_the_features() -> None:
    with pytest.raises(ValueError, match="bias first"):
        CalibratedJudge(Embedder(EmbeddingSettings()), [1.0, 2.0])


def test_perturbations_change_one_detail() -> None:
    assert perturbed("Staff get 25 days of leave.", []) == ("Staff get 51 days of leave.", "number")
    assert perturbed("Leave is not paid.", []) == ("Leave is paid.", "negation")
    assert perturbed("Leave is paid.", []) == ("Leave is not paid.", "negation")
    assert perturbed("Ask Maria about leave.", ["Sarah"]) == ("Ask Sarah about leave.", "name")
    assert perturbed("Ask about leave.", []) is None


def test_rates() -> None:
    assert rates([0.9, 0.4, 0.8, 0.1], [True, True, False, False], 0.5) == (0.5, 0.5)


def test_the_labelled_pairs_cover_every_suite_with_both_labels() -> None:
    pairs = read(PAIRS)
    suites = load_suites()
    labelled = {p["suite"] for p in pairs}
    assert pairs and all(isinstance(p["supported"], bool) for p in pairs)
    # the fit reads the tuning suites' pairs; a held-out suite added later (squad) may have none yet
    assert labelled <= {s.name for s in suites} and {s.name for s in suites if not s.held_out} <= labelled
    for suite in labelled:
        labels = [
            p["supported"] for p in pairs if p["suite"] == suite and not p["origin"].startswith("invented")
        ]
        assert any(labels) and not all(labels), suite  # model sentences of both kinds, not only inventions
