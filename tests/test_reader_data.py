"""The reader's training data: the local LLM's questions are kept only as documented, and only of sources
the mining manifest lists (never an evaluation corpus)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from evals.synth_reader import DATA, OUT, accepted, pick, prose, read_rows


def test_a_reply_is_kept_only_as_one_question_in_other_words() -> None:
    sentence = "Employees accrue two days of paid leave for every month they work."
    assert (
        accepted("How much holiday do I earn each month?", sentence)
        == "How much holiday do I earn each month?"
    )
    assert accepted('"How much holiday do I earn?"', sentence) == "How much holiday do I earn?"
    assert accepted("Question: How much holiday?\nAnswer: two days.", sentence) is None  # not one line
    assert accepted("Holiday accrual explained.", sentence) is None  # not a question
    assert accepted("Leave?", sentence) is None  # too short to be a question a user asks
    assert accepted("Do employees accrue two days of paid leave every month?", sentence) is None  # copied


def test_prose_sentences_are_asked_about_evenly_across_sources() -> None:
    rows = [
        {"source": source, "path": f"{source}.md", "title": source, "section": [str(n)], "text": text}
        for source in ("a", "b")
        for n in range(3)
        for text in (
            "Every request is reviewed by a second engineer before it is merged.",
            "$ make install",
        )
    ]
    order = pick(rows, seed=1)
    assert [s["source"] for s, _ in order] == ["a", "b"] * 3  # round robin, one per section
    assert all(prose(s["text"]) for s, _ in order)
    assert all(s["text"] in paragraph for s, paragraph in order)


def test_synthetic_questions_are_of_mined_sources_only() -> None:
    manifest = json.loads((DATA / "manifest.json").read_text())
    sources = {s["repo"] for s in manifest["sources"]}
    rows = read_rows(OUT)
    assert rows and {r["source"] for r in rows} <= sources
    kept = [r for r in rows if r["question"]]
    assert all(accepted(r["question"], r["answer"]) == r["question"] for r in kept)


def test_a_row_cut_off_by_a_killed_run_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.jsonl.gz"
    sizes = []
    for n in range(3):
        with gzip.open(path, "at", encoding="utf-8") as handle:
            handle.write(json.dumps({"key": str(n), "question": f"Question {n}?"}) + "\n")
        sizes.append(path.stat().st_size)
    path.write_bytes(path.read_bytes()[: (sizes[1] + sizes[2]) // 2])  # killed while writing the third row
    assert [r["key"] for r in read_rows(path)] == ["0", "1"]
    assert [r["key"] for r in read_rows(path)] == ["0", "1"]  # and the file is whole again


def test_a_group_holds_the_answer_its_page_and_near_misses_on_other_pages() -> None:
    """A training group: the answer first, then sentences of its page (with `nearest`, those sharing the
    most of the question's words: on topic, not the answer), then BM25 near misses of other pages."""
    import random

    from evals.train_reader import _groups

    def sentence(text: str, path: str) -> dict[str, object]:
        return {"text": text, "source": "s", "path": path, "title": path, "section": []}

    page = [
        sentence("Parental leave is twelve weeks, paid in full.", "leave.md"),
        *(sentence(f"Holiday number {n} falls in the summer months.", "leave.md") for n in range(6)),
        sentence("Parental leave requests go to your manager first.", "leave.md"),
        sentence("Parental leave is planned with the team.", "leave.md"),
    ]
    elsewhere = [sentence(f"Sick leave rule {n} applies to parental cover.", f"sick{n}.md") for n in range(6)]
    question = {
        "question": "How long is parental leave?", "source": "s", "path": "leave.md", "title": "Leave",
        "section": [], "answer": [page[0]["text"]], "page": page,
    }  # fmt: skip
    for nearest in (False, True):
        (group,), (missing,) = _groups([question], page + elsewhere, random.Random(1), "mined", 2, nearest)
        assert group.labels == [1] + [0] * 7 and group.candidates[0].startswith(page[0]["text"])
        siblings = {c.split(" | ")[0] for c in group.candidates[1:3]}
        assert siblings <= {s["text"] for s in page[1:]}
        assert all(c.split(" | ")[0] in {s["text"] for s in elsewhere} for c in group.candidates[3:])
        assert set(missing.labels) == {0}
    assert siblings == {page[7]["text"], page[8]["text"]}  # nearest: the two that speak of parental leave


def test_a_student_learns_the_teachers_logits_of_the_very_candidates_it_sees() -> None:
    from evals.train_reader import Group, bi_examples

    group = Group(
        "How long is parental leave?",
        ["Leave is paid for a year.", "Parental leave is 12 weeks.", "Apply in Workday.", "Ask HR."],
        [0, 1, 0, 0],
        "a",
        "mined",
        {"teacher": [0.5, 3.0, -1.0, -2.0]},
    )
    [(question, answer, hard, teacher)] = bi_examples([group], negatives=2)
    assert (question, answer) == ("How long is parental leave?", "Parental leave is 12 weeks.")
    assert hard == ["Leave is paid for a year.", "Apply in Workday."]  # the first two that do not answer
    assert teacher == [3.0, 0.5, -1.0]  # the answer's, then each hard negative's
    untaught = Group(group.question, group.candidates, group.labels, "a", "mined")
    assert bi_examples([untaught], negatives=2)[0][3] == []
    assert bi_examples([Group("?", ["x", "y", "z"], [0, 0, 0], "a", "mined-unanswerable")]) == []
