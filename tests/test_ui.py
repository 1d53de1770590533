"""The Streamlit chat through Streamlit's AppTest: the real page script, pipeline, corpus and model."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from rag.feedback import FeedbackStore
from rag.index.catalog import Catalog
from rag.settings import Settings
from ui.components import WORD_JOINER

from .conftest import BIN, CORPUS, REPO, DefaultIndex, free_port, wait_http

APP = str(REPO / "ui" / "app.py")


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory: pytest.TempPathFactory, default_index: DefaultIndex) -> Path:
    """A copy of the session's index (the chat writes feedback next to it); the first start's ingest is
    tested on a fresh data dir below."""
    return default_index.copy(tmp_path_factory.mktemp("ui") / "data")


@pytest.fixture
def app(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("RAG_DATA_DIR", str(shared_data))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(CORPUS))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at


def shown(markdown: str) -> str:
    """The text escaped Markdown shows: escapes and the word joiners that keep addresses unlinked removed."""
    return re.sub(r"\\(.)", r"\1", markdown).replace(WORD_JOINER, "")


def assistant_text(at: AppTest) -> str:
    return "\n".join(md.value for m in at.chat_message if m.name == "assistant" for md in m.markdown)


def test_first_start_ingests_the_default_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "fresh"))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(CORPUS))
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception
    assert [s.label for s in at.status] == ["Indexed 2 documents (16 new chunks)"]
    assert "Index: 2 documents" in " ".join(c.value for c in at.sidebar.caption)


def test_examples_come_from_settings(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(shared_data))
    monkeypatch.setenv("RAG_UI__EXAMPLES", json.dumps(["How much funding was returned?", "Who led it?"]))
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert [b.label for b in at.button if b.key and b.key.startswith("example-")] == [
        "How much funding was returned?",
        "Who led it?",
    ]
    at.button(key="example-0").click().run()
    assert "£500\\,000" in assistant_text(at)


def test_without_examples_the_indexed_titles_are_offered(app: AppTest) -> None:
    assert not [b for b in app.button if b.key and b.key.startswith("example-")]  # none hard-coded
    caption = " ".join(c.value for c in app.caption)
    assert "Ask about the indexed documents" in caption and "smart military bases" in caption


def test_questions_the_documents_ask_are_offered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No examples configured: an FAQ's question headings are offered, clickable, and answered."""
    from ingest.indexer import ingest

    handbook = tmp_path / "handbook"
    handbook.mkdir()
    (handbook / "it-faq.md").write_text(
        "# IT FAQ\n\n## How do I reset my password?\n\nOpen the account portal and choose Reset. "
        "A new password must have at least 14 characters.\n\n## Who approves new laptops?\n\n"
        "Your manager approves new laptops.\n"
    )
    (handbook / "travel.md").write_text("# Travel\n\nTrains are booked through the travel desk.\n")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([handbook], settings)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    at = AppTest.from_file(APP, default_timeout=180).run()
    offered = [b for b in at.button if b.key and b.key.startswith("example-")]
    assert [b.label for b in offered] == ["How do I reset my password?"]  # one per document
    offered[0].click().run()
    assert "at least 14 characters" in assistant_text(at)


def test_re_ingest_reads_what_was_ingested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the default corpus: the folders (and sites) that were ingested into this index."""
    from ingest.indexer import ingest

    handbook = tmp_path / "handbook"
    handbook.mkdir()
    (handbook / "leave.md").write_text("# Leave\n\nStaff get 25 days of annual leave a year.\n")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([handbook], settings)
    (handbook / "travel.md").write_text("# Travel\n\nTrains are booked through the travel desk.\n")
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(CORPUS))
    monkeypatch.setenv("RAG_UI__ADMINS", '["*"]')  # a page only its operator reaches
    at = AppTest.from_file(APP, default_timeout=180).run()
    button = next(b for b in at.sidebar.button if b.label == "Re-ingest the sources")
    button.click().run()
    assert not at.exception
    assert [s.label for s in at.status] == ["Indexed 2 documents (1 new chunks)"]
    sources = sorted(d.source.rsplit("/", 1)[-1] for d in Catalog(settings.catalog_path).documents())
    assert sources == ["leave.md", "travel.md"]  # and no default-corpus document


def test_ask_streams_an_answer_with_cited_highlighted_quote(app: AppTest) -> None:
    ask(app, "How much funding was returned?")
    text = assistant_text(app)
    assert "£500\\,000" in text and "October 2021" in text and "**[1]**" in text
    cards = [e for e in app.expander if shown(e.label).startswith("[1]")]
    label = shown(cards[0].label) if cards else ""
    assert "smart military bases" in label  # the article's title, without internals
    assert not any(word in label for word in ("passage", "page ·", "characters")), label
    assert not any("characters" in c.value for e in app.expander for c in e.caption)
    highlighted = [md.value for md in cards[0].markdown]
    assert any(":orange-background[**Imperial said no research went ahead" in v for v in highlighted)


def test_follow_up_uses_the_conversation(app: AppTest) -> None:
    ask(app, "How much funding was returned?")
    ask(app, "When was that?")
    assert "October 2021" in assistant_text(app)
    assert len([m for m in app.chat_message if m.name == "user"]) == 2


def test_refusal_shows_related_passages(app: AppTest) -> None:
    ask(app, "What is Jari's annual revenue?")
    text = assistant_text(app)
    assert "don’t contain" in text or "don't contain" in text.replace("\\", "")
    assert "**Related passages**" in text
    related = [shown(e.label) for e in app.expander]
    assert related and len(related) == len(set(related)), related  # no two identical cards
    assert all(": “" in label for label in related), related  # each shows how its passage starts


def test_thread_cards_show_author_and_votes(app: AppTest) -> None:
    ask(app, "What did cyd say about loyalty pledges?")
    labels = [shown(e.label) for e in app.expander]
    assert any("cyd@lemmy.world · 2▲ 6▼" in label and "comment" in label for label in labels)


def test_kind_filter(app: AppTest) -> None:
    app.sidebar.multiselect[1].set_value(["comment"]).run()
    ask(app, "What did people say about China?")
    labels = [shown(e.label) for e in app.expander if shown(e.label).startswith("[")]
    assert labels and all(" — comment · " in label for label in labels)


def test_feedback_is_stored(app: AppTest, shared_data: Path) -> None:
    ask(app, "How much funding was returned?")
    before = len(FeedbackStore(Settings(data_dir=shared_data).feedback_path).all())
    app.feedback[0].set_value(1).run()
    rows = FeedbackStore(Settings(data_dir=shared_data).feedback_path).all()
    assert len(rows) == before + 1
    assert rows[-1].rating == 1 and rows[-1].question == "How much funding was returned?"
    assert "£500,000" in rows[-1].answer and "£500,000" in rows[-1].citations[0]["quote"]


def test_export_and_new_conversation(app: AppTest) -> None:
    from ui.components import to_json, to_markdown

    ask(app, "How much funding was returned?")
    assert [d.label for d in app.get("download_button")] == [
        "Export conversation (Markdown)",
        "Export conversation (JSON)",
    ]
    messages = app.session_state["messages"]
    markdown = to_markdown(messages)
    assert (
        "**Question:** How much funding was returned?" in markdown
        and "“Imperial said no research" in markdown
    )
    exported = json.loads(to_json(messages))
    assert exported["conversation"][1]["answer"]["citations"][0]["quote"].startswith("Imperial said")
    next(b for b in app.sidebar.button if b.label == "New conversation").click().run()
    assert app.session_state["messages"] == [] and not [m for m in app.chat_message]


def test_compact_embed_mode(app: AppTest) -> None:
    app.query_params["compact"] = "true"
    app.run()
    assert not app.title and not app.sidebar.button
    ask(app, "How much funding was returned?")
    assert "£500\\,000" in assistant_text(app)
    # the sidebar's conversation actions are in the compact page's menu
    assert "New conversation" in [b.label for b in app.button]
    assert {b.label for b in app.get("download_button")} == {
        "Export conversation (Markdown)",
        "Export conversation (JSON)",
    }


def test_unreachable_llm_is_a_clear_message(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_GENERATOR__NAME", "openai")
    monkeypatch.setenv("RAG_GENERATOR__BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RAG_GENERATOR__FALLBACK", "false")
    monkeypatch.setenv("RAG_GENERATOR__TIMEOUT", "2")
    app.run()
    ask(app, "How much funding was returned?")
    assert app.error and "http://127.0.0.1:9/v1" in app.error[0].value


def test_corpus_payloads_render_as_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "poison.md").write_text(
        "# Poison\n\nThe launch party menu was <script>alert(1)</script> ![pixel](http://evil.example/x.png) "
        "<img src=x onerror=alert(2)> and [click](javascript:alert(3)) cake.\n"
    )
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(corpus))
    at = AppTest.from_file(APP, default_timeout=180).run()
    ask(at, "What was on the launch party menu?")
    rendered = " ".join(md.value for md in at.markdown) + " ".join(
        md.value for e in at.expander for md in e.markdown
    )
    assert "cake" in rendered
    for payload in (r"<script>", r"!\[pixel\]", r"<img", r"\[click\]\(javascript"):
        assert not re.search(r"(?<!\\)" + payload, rendered), payload  # only ever backslash-escaped
    assert "alert\\(1\\)" in rendered  # the tag is markup (dropped at ingest); its text shows as text


@pytest.mark.parametrize(
    ("question", "expect_error"),
    [
        ("x" * 2500, "the question is too long"),
        ("\x00\x01\x02", "the question is empty"),
        ("<script>alert(1)</script> How much funding was returned?", ""),
        ("'; DROP TABLE documents; -- 💷 \u202e", ""),
    ],
)
def test_bad_questions_in_the_chat(app: AppTest, question: str, expect_error: str) -> None:
    ask(app, question)
    if expect_error:
        assert app.error and expect_error in app.error[0].value
        app.run()  # a refused question is not an answer that was stopped: nothing joins the conversation
        assert not app.chat_message and not [c for c in app.caption if c.value == "Stopped."]
        return
    user = [md.value for m in app.chat_message if m.name == "user" for md in m.markdown]
    assert user and not re.search(r"(?<!\\)<script>", user[-1])
    assert not app.error


def test_sigterm_to_rag_ui_leaves_nothing_serving(shared_data: Path, tmp_path: Path) -> None:
    """`rag ui` becomes the Streamlit server (no child left behind when it is stopped)."""
    port = free_port()
    health = f"http://127.0.0.1:{port}/_stcore/health"
    env = {**os.environ, "RAG_DATA_DIR": str(shared_data), "RAG_CORPUS_DIR": str(CORPUS)}
    with open(tmp_path / "ui.log", "wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "rag"), "ui", "--port", str(port)], env=env, stdout=log, stderr=log
        )
        try:
            wait_http(health, timeout=120, proc=proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    with pytest.raises(httpx.ConnectError):
        httpx.get(health, timeout=5)
    serving = [
        cmdline for cmdline in (p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if p.exists())
        if b"streamlit" in cmdline and str(port).encode() in cmdline
    ]  # fmt: skip
    assert serving == []


def test_a_document_is_formatted_from_its_outline_and_stays_inert() -> None:
    from ui.components import blocks_of, formatted, quoted_blocks

    text = "Leave\n\nAnnual\n\nYou get [20](http://x.example) days; ask bob@x.example.\n\none\n\nrun ```x```"
    kinds = [("heading", 1), ("heading", 2), ("paragraph", 0), ("item", 0), ("code", 0)]
    blocks = [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text)]
    outline = [
        {"start": a, "end": b, "kind": k, "level": lv} for (a, b), (k, lv) in zip(blocks, kinds, strict=True)
    ]
    quote = text.index("You get")
    markdown = formatted(text, outline, quote, quote + 7)
    parts = markdown.split("\n\n")
    assert parts[0] == "### Leave" and parts[1] == "#### Annual" and parts[3] == "- one"
    assert ":orange-background[**You get**]" in parts[2] and "\\[20\\]\\(http" in parts[2]
    assert f"bob{WORD_JOINER}\\@x" in parts[2]  # no mailto: link
    assert parts[4] == "``````text\nrun ```x```\n``````"  # a fence longer than any run of backticks inside
    # the quote's blocks come after the heading above them
    assert [b["kind"] for b in quoted_blocks(outline, quote, quote + 7)] == ["heading", "paragraph"]
    # a catalog row without an outline is read as paragraphs
    assert [(b["start"], b["end"]) for b in blocks_of("One.\n\nTwo\nlines.\n", [])] == [(0, 4), (6, 16)]


def test_a_comment_shows_its_author_votes_and_depth() -> None:
    from ui.components import formatted

    text = "Yes: it adds 80 euros."
    comment = {"start": 0, "end": len(text), "kind": "comment", "level": 2, "author": "mira@forum.example",
               "op": True, "upvotes": 9, "downvotes": 0, "age": "2 days ago", "reply_to": "tomas@forum.example"}  # fmt: skip
    lines = formatted(text, [comment], 0, 0).split("\n")
    assert lines[0].startswith("> > **mira") and "9▲ 0▼ · original poster · reply to tomas" in lines[0]
    assert lines[1].startswith("> > Yes\\:")


# The operator's settings are not a visitor's (security finding 1): the probe set a server key, switched the
# generator to openai, typed its own listener as the endpoint and received the key with the passages.


def test_a_visitor_picks_a_generator_never_an_endpoint_or_key(
    app: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .fakellm import FakeLLM, sse

    with FakeLLM.running() as operators, FakeLLM.running() as visitors:
        monkeypatch.setenv("RAG_GENERATOR__BASE_URL", operators.url)
        monkeypatch.setenv("RAG_GENERATOR__API_KEY", "sk-operator")
        monkeypatch.setenv("RAG_GENERATOR__FALLBACK", "false")
        monkeypatch.setenv("RAG_UI__GENERATORS", '["extractive", "openai"]')
        app.run()
        assert not app.exception
        assert not app.text_input and not app.text_area  # nowhere to type an endpoint, a model or a key
        assert [s.label for s in app.sidebar.selectbox if s.label == "Answer generator"]
        picker = next(s for s in app.sidebar.selectbox if s.label == "Answer generator")
        assert picker.options == ["extractive", "openai"]
        app.query_params["base_url"] = visitors.url  # nor through the address
        picker.set_value("openai").run()
        operators.script.append(sse("Imperial returned £500,000 [1]."))
        ask(app, "How much funding was returned?")
        sent = [{k.lower(): v for k, v in r["headers"].items()} for r in operators.requests]
        assert [h.get("authorization") for h in sent] == ["Bearer sk-operator"]
        assert visitors.requests == []


def test_by_default_the_page_offers_no_generator_choice_and_no_re_ingest(app: AppTest) -> None:
    assert not [s for s in app.sidebar.selectbox if s.label == "Answer generator"]
    assert "Re-ingest the sources" not in [b.label for b in app.sidebar.button]
    assert not app.get("file_uploader")  # adding documents is the operator's too


@pytest.mark.parametrize(
    ("user", "may_re_ingest"),
    [
        ({"is_logged_in": True, "email": "Ops@Example.com", "name": "Ops"}, True),
        ({"is_logged_in": True, "email": "reader@example.com", "name": "Reader"}, False),
    ],
)
def test_with_sign_in_only_admins_may_re_ingest(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch, user: dict[str, object], may_re_ingest: bool
) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(shared_data))
    monkeypatch.setenv("RAG_UI__SIGN_IN", "true")
    monkeypatch.setenv("RAG_UI__ADMINS", '["ops@example.com"]')
    at = AppTest.from_file(APP, default_timeout=180)
    at.user = user
    at.run()
    assert not at.exception
    labels = [b.label for b in at.sidebar.button]
    assert ("Re-ingest the sources" in labels) is may_re_ingest
    assert bool(at.get("file_uploader")) is may_re_ingest  # and adding a document
    assert "Sign out" in labels
    ask(at, "How much funding was returned?")  # every signed-in visitor may ask
    assert "£500\\,000" in assistant_text(at)


def test_with_sign_in_a_visitor_who_has_not_signed_in_sees_only_the_sign_in(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(shared_data))
    monkeypatch.setenv("RAG_UI__SIGN_IN", "true")
    monkeypatch.setenv("RAG_UI__ADMINS", '["ops@example.com"]')
    at = AppTest.from_file(APP, default_timeout=180)
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert not at.chat_input and not at.sidebar.button
    assert [b.label for b in at.button] == ["Sign in"]
    at.button[0].click().run()  # no [auth] provider in this test's secrets: one clear line, no traceback
    assert not at.exception
    assert "no sign-in provider is configured" in at.error[0].value


def test_regenerate_replaces_the_last_answer_and_edit_resends_a_question(app: AppTest) -> None:
    ask(app, "How much funding was returned?")
    ask(app, "Who led the partnership?")
    assert [m.name for m in app.chat_message] == ["user", "assistant", "user", "assistant"]
    # only the last answer may be regenerated; every answer may be copied
    assert [b.key for b in app.button if b.key and b.key.startswith("regenerate-")] == ["regenerate-3"]
    assert {"copy-m1", "copy-m3"} <= {b.key for b in app.button}
    before = assistant_text(app)
    app.button(key="regenerate-3").click().run()
    assert not app.exception
    assert [m.name for m in app.chat_message] == ["user", "assistant", "user", "assistant"]  # replaced
    assert assistant_text(app) == before  # the same question over the same index: the same answer
    assert shown(app.chat_message[2].markdown[0].value) == "Who led the partnership?"

    app.text_area(key="edit-0").set_value("When was the funding returned?")
    app.button(key="resend-0").click().run()  # the conversation from that question on is replaced
    assert not app.exception
    assert [m.name for m in app.chat_message] == ["user", "assistant"]
    assert shown(app.chat_message[0].markdown[0].value) == "When was the funding returned?"
    assert "October 2021" in app.chat_message[1].markdown[0].value


def signed_in_page(data: Path, monkeypatch: pytest.MonkeyPatch, email: str) -> AppTest:
    monkeypatch.setenv("RAG_DATA_DIR", str(data))
    monkeypatch.setenv("RAG_UI__SIGN_IN", "true")
    at = AppTest.from_file(APP, default_timeout=180)
    at.user = {"is_logged_in": True, "email": email, "name": email.split("@")[0]}
    at.run()
    assert not at.exception
    return at


def past(at: AppTest) -> list[str]:
    return [shown(b.label) for b in at.sidebar.button if b.key and b.key.startswith("conv-")]


def test_with_sign_in_each_user_finds_their_conversations_on_the_server(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    shutil.copytree(shared_data, data)
    ann = signed_in_page(data, monkeypatch, "Ann@Example.com")
    ask(ann, "How much funding was returned?")
    bob = signed_in_page(data, monkeypatch, "bob@example.com")
    assert past(bob) == []  # not Ann's
    ask(bob, "Who led the partnership?")
    # Ann again, in a new session (another browser): her conversation, from the server, reopened whole
    again = signed_in_page(data, monkeypatch, "ann@example.com")
    assert past(again) == ["How much funding was returned?"]
    conv = next(b for b in again.sidebar.button if b.key and b.key.startswith("conv-"))
    conv.click().run()
    assert "£500\\,000" in assistant_text(again)
    ident = conv.key.removeprefix("conv-")
    again.text_input(key=f"name-{ident}").set_value("Funding")
    again.button(key=f"rename-{ident}").click().run()
    assert past(signed_in_page(data, monkeypatch, "ann@example.com")) == ["Funding"]
    assert past(signed_in_page(data, monkeypatch, "bob@example.com")) == ["Who led the partnership?"]
    again.button(key=f"delete-{ident}").click().run()
    assert past(signed_in_page(data, monkeypatch, "ann@example.com")) == []
    assert (data / "conversations.sqlite3").exists()


def test_the_server_keeps_each_users_newest_conversations(tmp_path: Path) -> None:
    from ui.conversations import MAX_CONVERSATIONS, ConversationStore

    store = ConversationStore(tmp_path / "conversations.sqlite3")
    for n in range(MAX_CONVERSATIONS + 1):
        store.put("ann", f"c{n}", {"title": f"T{n}", "updated": float(n), "messages": []})
    store.put("bob", "b", {"title": "B", "updated": 0.0, "messages": []})
    kept = store.all("ann")
    assert len(kept) == MAX_CONVERSATIONS and "c0" not in kept and next(iter(kept)) == f"c{MAX_CONVERSATIONS}"
    store.put("ann", "c1", {"title": "again", "updated": 0.5, "messages": []})  # the one just saved stays
    assert store.all("ann")["c1"]["title"] == "again" and len(store.all("ann")) == MAX_CONVERSATIONS
    store.delete("ann", "c1")
    assert "c1" not in store.all("ann") and list(store.all("bob")) == ["b"]


def test_an_unknown_backend_name_is_one_line_on_the_page(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(shared_data))
    monkeypatch.setenv("RAG_RETRIEVAL__RETRIEVER", "nope")
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception
    assert "unknown retriever 'nope'; known:" in at.error[0].value
