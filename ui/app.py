"""The Streamlit chat: a thin shell over `rag.pipeline`. Run with `rag ui` (or `make run`).

Query parameters: `?embed=true` (Streamlit's own: no toolbar) and `compact=true` (ours: no sidebar, no
title, fits a 400x600 iframe).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import streamlit as st

from ingest.loaders import chunk_kinds
from rag.errors import RagError
from rag.index.catalog import Catalog, DocumentRecord
from rag.settings import Settings, SettingsError, load_settings
from rag.types import Answer, Done, TextDelta
from ui import components as ui
from ui.conversations import ConversationStore


@st.cache_resource(show_spinner="Loading the index and the embedding model…")
def get_pipeline(settings_json: str) -> Any:
    from rag.pipeline import build_pipeline

    pipeline = build_pipeline(Settings.model_validate_json(settings_json))
    pipeline.load_model()  # under this spinner, not in the first answer
    return pipeline


def run_ingest(settings: Settings, label: str, roots: list[str]) -> None:
    """Ingest `roots` (folders, files, site URLs) with a progress bar, then reload the pipeline."""
    from ingest.crawl import crawl, is_url
    from ingest.indexer import ingest

    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0, text="reading documents…")

        def progress(stage: str, done: int, total: int) -> None:
            what = "documents read" if stage == "reading" else "chunks embedded"
            bar.progress(done / max(total, 1), text=f"{done}/{total} {what}")

        files = [Path(r) for r in roots if not is_url(r) and Path(r).exists()]
        for gone in (r for r in roots if not is_url(r) and not Path(r).exists()):
            st.warning(ui.escape_md(f"{gone} no longer exists: not re-ingested"))
        reports = [ingest(files, settings, progress=progress)] if files else []
        reports += [crawl(site, settings, progress=progress) for site in roots if is_url(site)]
        bar.progress(1.0, text=f"{reports[-1].chunks_total if reports else 0} chunks in the index")
        for skipped in (s for report in reports for s in report.skipped):
            st.warning(ui.escape_md(f"skipped {skipped.source}: {skipped.reason}"))
        read = sum(r.files_read for r in reports)
        added = sum(r.chunks_added for r in reports)
        status.update(label=f"Indexed {read} documents ({added} new chunks)", state="complete")
    get_pipeline.clear()


UPLOADS = {"md", "markdown", "txt", "html", "htm", "pdf"}


def add_document(settings: Settings, name: str, data: bytes) -> None:
    """An uploaded file kept under the data dir's `uploads/` (a file of the same name is its new version)
    and indexed incrementally with progress; a re-ingest reads it again."""
    safe = "".join(c if c.isalnum() or c in " ._-" else "_" for c in Path(name).name).strip(" .") or "upload"
    if safe.rsplit(".", 1)[-1].lower() not in UPLOADS:
        st.error(ui.escape_md(f"{safe}: not a Markdown, text, HTML or PDF file"))
        return
    if len(data) > settings.ingest.max_file_mb * 1_000_000:
        st.error(
            ui.escape_md(f"{safe} is larger than {settings.ingest.max_file_mb:g} MB (ingest.max_file_mb)")
        )
        return
    folder = settings.data_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe
    partial = folder / f".{safe}.part"
    partial.write_bytes(data)
    partial.replace(target)  # a reader never sees half a file
    run_ingest(settings, f"Adding {safe}…", [str(target)])


_URL_SAFE = ":/?#[]@!$&'*+,;=%~"  # what a URL keeps as is; anything else (parentheses, spaces) is encoded


@st.dialog("Document", width="large")
def show_document(settings: Settings, path: str, start: int, end: int) -> None:
    doc = Catalog(settings.catalog_path).get(path)
    if doc is None:
        st.error("This document is no longer in the index.")
        return
    st.subheader(ui.escape_md(doc.title), anchor=False)
    url = doc.meta.get("url", "")
    st.caption(ui.escape_md(doc.source))
    if url.lower().startswith(("http://", "https://")):  # the page's own address: the one link shown
        st.markdown(f"[Open the page ↗]({quote(url, safe=_URL_SAFE)})")
    # the quote first, in its blocks (in view as the dialog opens), then the whole document, formatted
    blocks = ui.blocks_of(doc.text, doc.outline)
    st.markdown(ui.formatted(doc.text, ui.quoted_blocks(blocks, start, end), start, end))
    with st.expander("The whole document"):
        st.markdown(ui.formatted(doc.text, blocks, start, end))


def sidebar(
    settings: Settings, catalog: Catalog, documents: list[DocumentRecord]
) -> tuple[Settings, dict[str, Any], int]:
    """Generator, passages, filters, re-ingest and index status; returns the settings, filters and k."""
    filters: dict[str, Any] = {}
    with st.sidebar:
        st.header("Settings")
        # The operator's generators only: a visitor picks a name, never an endpoint, a model or a key.
        names = list(dict.fromkeys(settings.ui.generators))
        generator = settings.generator
        if len(names) > 1:
            current = names.index(generator.name) if generator.name in names else 0
            name = st.selectbox("Answer generator", names, index=current)
            generator = generator.model_copy(update={"name": name})
        elif names:
            generator = generator.model_copy(update={"name": names[0]})
        k = st.slider("Passages per answer", 1, 10, settings.retrieval.k)
        sources = st.multiselect("Sources", [d.source for d in documents], placeholder="all sources")
        present = sorted({kind for d in documents for kind in chunk_kinds(d.loader)})
        kinds = st.multiselect("Kinds", present, placeholder="all kinds")
        if sources:
            filters["source"] = sources
        if kinds:
            filters["kind"] = kinds
        from ingest.crawl import is_url
        from ingest.indexer import display_path

        if settings.ui.may_write(visitor()):  # the operator's: admins only (ui.admins)
            roots = catalog.roots() or [str(settings.corpus_dir)]
            shown = "\n\n".join(r if is_url(r) else display_path(Path(r)) for r in roots)  # no server path
            if st.button("Re-ingest the sources", use_container_width=True, help=shown):
                run_ingest(settings, "Re-ingesting…", roots)
            upload = st.file_uploader(
                "Add a document", type=sorted(UPLOADS), help="Markdown, text, HTML or PDF: indexed at once"
            )
            if upload is not None and st.session_state.get("uploaded") != upload.file_id:
                add_document(settings, upload.name, upload.getvalue())
                # once per file, not on every rerun; only once indexed (a run stopped midway tries again)
                st.session_state["uploaded"] = upload.file_id
        chunks = sum(d.chunks for d in documents)
        last = catalog.state("last_ingest")
        when = dt.datetime.fromtimestamp(float(last)).strftime("%Y-%m-%d %H:%M") if last else "never"
        st.caption(f"Index: {len(documents)} documents, {chunks} chunks; last ingest {when}")
        conversation_actions(settings)
        if settings.ui.sign_in:
            st.caption(ui.escape_md(f"Signed in as {visitor().get('email') or visitor().get('name', '')}"))
            if st.button("Sign out", use_container_width=True):
                st.logout()
    return settings.model_copy(update={"generator": generator}), filters, k


def visitor() -> dict[str, Any]:
    """Who is on the page: Streamlit's `st.user` (empty unless sign-in is configured)."""
    return st.user.to_dict()


def signed_in(settings: Settings) -> bool:
    """With `ui.sign_in`, whether the visitor has signed in; if not, the page offers only the sign-in."""
    if not settings.ui.sign_in or visitor().get("is_logged_in"):
        return True
    from streamlit.errors import StreamlitAuthError

    st.title("Ask the documents")
    st.write("Sign in to ask questions about the documents.")
    if st.button("Sign in", type="primary"):
        try:
            st.login()
        except StreamlitAuthError:
            st.error(
                "ui.sign_in is on but no sign-in provider is configured: add an [auth] section to "
                ".streamlit/secrets.toml (see the README)."
            )
    return False


def conversation_actions(settings: Settings) -> None:
    """New conversation, the past ones and the exports: in the sidebar, or the compact embed's menu."""
    if st.button("New conversation", use_container_width=True):
        start_conversation()
    past_conversations(settings)
    messages = st.session_state["messages"]
    if messages:
        st.download_button(
            "Export conversation (Markdown)", ui.to_markdown(messages), "conversation.md", "text/markdown",
            use_container_width=True,
        )  # fmt: skip
        st.download_button(
            "Export conversation (JSON)", ui.to_json(messages), "conversation.json", "application/json",
            use_container_width=True,
        )  # fmt: skip


def start_conversation(messages: list[dict[str, Any]] | None = None, ident: str | None = None) -> None:
    import uuid

    st.session_state["messages"] = messages or []
    st.session_state["conversation"] = ident or uuid.uuid4().hex


def server_user(settings: Settings) -> str | None:
    """The signed-in visitor whose conversations the server keeps (`ui.sign_in`); None: the browser keeps
    them (an anonymous page)."""
    user = visitor()
    if not settings.ui.sign_in or not user.get("is_logged_in"):
        return None
    email = str(user.get("email") or "").strip().lower()
    return email or str(user.get("sub") or "") or None


def load_conversations(settings: Settings) -> None:
    """The past conversations: the signed-in visitor's from the server, else those this browser keeps, read
    once per visit (the browser answers after the first run); a save asked for by the previous run is
    written first. The browser side also gets the answers' texts for their Copy buttons."""
    messages = st.session_state["messages"]
    copies = {f"m{i}": ui.copy_text(m) for i, m in enumerate(messages) if m["role"] == "assistant"}
    saved = ui.browser(st.session_state.pop("save", None), copies)
    user = server_user(settings)
    if user is not None:
        if st.session_state.get("conversations_of") != user:
            st.session_state["conversations"] = ConversationStore(settings.conversations_path).all(user)
            st.session_state["conversations_of"] = user
        return
    if saved == ui.PENDING or "conversations" in st.session_state:
        return
    try:
        loaded = json.loads(saved) if saved else {}
    except ValueError:
        loaded = {}
    st.session_state["conversations"] = loaded if isinstance(loaded, dict) else {}


def keep_conversation(settings: Settings, ident: str, conversation: dict[str, Any] | None) -> None:
    """Keep a conversation (None: delete it) where this page keeps them: on the server for a signed-in
    visitor, else in the browser on the next run."""
    conversations: dict[str, dict[str, Any]] = st.session_state["conversations"]
    if conversation is None:
        conversations.pop(ident, None)
    else:
        conversations[ident] = conversation
    user = server_user(settings)
    if user is None:
        st.session_state["save"] = ui.keep(conversations)
    elif conversation is None:
        ConversationStore(settings.conversations_path).delete(user, ident)
    else:
        ConversationStore(settings.conversations_path).put(user, ident, conversation)


def remember(settings: Settings) -> None:
    """The current conversation into the past ones (never before they were read: an early save would drop
    the others)."""
    conversations = st.session_state.get("conversations")
    messages = st.session_state["messages"]
    if conversations is None or not messages:
        return
    ident = st.session_state["conversation"]
    title = conversations.get(ident, {}).get("title") or messages[0]["content"][:80]
    keep_conversation(
        settings, ident, {"title": title, "updated": time.time(), "messages": ui.messages_json(messages)}
    )


def past_conversations(settings: Settings) -> None:
    """Earlier conversations to reopen, rename or delete, newest first."""
    conversations: dict[str, dict[str, Any]] = st.session_state.get("conversations") or {}
    if not conversations:
        return
    st.caption("Past conversations")
    current = st.session_state.get("conversation")
    for ident, conv in sorted(conversations.items(), key=lambda kv: -float(kv[1].get("updated", 0))):
        title = str(conv.get("title") or "Untitled")
        opened, more = st.columns([5, 1])
        if opened.button(ui.escape_md(title), key=f"conv-{ident}", use_container_width=True,
                         type="primary" if ident == current else "secondary"):  # fmt: skip
            start_conversation(ui.messages_from_json(conv.get("messages") or []), ident)
            st.rerun()
        with more.popover("…", help="Rename or delete"):
            name = st.text_input("Name", value=title, key=f"name-{ident}")
            if st.button("Rename", key=f"rename-{ident}") and name.strip():
                keep_conversation(settings, ident, {**conv, "title": name.strip()[:80]})
                st.rerun()
            if st.button("Delete", key=f"delete-{ident}"):
                keep_conversation(settings, ident, None)
                if ident == current:
                    start_conversation()
                st.rerun()


def ask(pipeline: Any, question: str, filters: dict[str, Any], k: int) -> Answer | None:
    """Stream an answer into the page, with a Stop button; returns it (None after an error, which is shown
    instead). What has been shown is kept in the session as it arrives: a run stopped midway (Stop, or any
    other click) leaves it for `keep_stopped` to add to the conversation."""
    turns = [{"role": m["role"], "content": m["content"]} for m in st.session_state["messages"]]
    done: dict[str, Answer] = {}
    shown = st.session_state["streaming"] = {"question": question, "text": ""}

    text = st.container()
    waiting = text.empty()
    waiting.caption("Searching the documents…")  # until the first verified sentence arrives
    stop = st.empty()
    stop.button("Stop", key="stop", help="Stop the answer here and keep what has arrived")

    def deltas() -> Any:
        for event in pipeline.stream(question, turns, filters or None, k):
            if isinstance(event, TextDelta):
                waiting.empty()
                yield ui.escape_md(event.text)
                shown["text"] += event.text  # on the page: a stop raised while showing it comes before
            elif isinstance(event, Done):
                done["answer"] = event.answer

    try:
        with text:
            st.write_stream(deltas())
    except RagError as exc:  # the library's errors: one line (rag.errors); no answer to keep
        st.session_state.pop("streaming", None)
        waiting.empty()
        st.error(str(exc))
        return None
    finally:
        stop.empty()
    st.session_state.pop("streaming", None)  # finished: only a run stopped midway leaves it
    return done.get("answer")


def keep_stopped(settings: Settings) -> None:
    """An answer the previous run stopped while it streamed: its question and what had arrived, marked
    stopped, join the conversation."""
    shown = st.session_state.pop("streaming", None)
    if not shown:
        return
    st.session_state["messages"] += [
        {"role": "user", "content": shown["question"]},
        {"role": "assistant", "content": shown["text"].strip(), "stopped": True},
    ]
    remember(settings)


def edit_question(i: int, content: str) -> None:
    """Edit a question and send it again: the conversation from that question on is replaced."""
    with st.popover(
        "Edit", icon=":material/edit:", type="tertiary", help="Edit this question and ask it again"
    ):
        edited = st.text_area("Your question", value=content, key=f"edit-{i}")
        if st.button("Send", key=f"resend-{i}", type="primary") and edited.strip():
            del st.session_state["messages"][i:]
            st.session_state["asking"] = edited.strip()
            st.rerun()


def answer_actions(settings: Settings, i: int, messages: list[dict[str, Any]]) -> None:
    """Under an answer: Copy (the answer with its sources), Regenerate (the last answer) and feedback."""
    answer: Answer | None = messages[i].get("answer")
    row = st.container(horizontal=True, vertical_alignment="center")
    copy = row.button("Copy", key=f"copy-m{i}", icon=":material/content_copy:", type="tertiary",
                      help="Copy the answer and its sources")  # fmt: skip
    if copy:
        st.toast("Copied the answer and its sources")  # the browser side copies it (ui/browser)
    last = i == len(messages) - 1 and i > 0
    if last and row.button("Regenerate", key=f"regenerate-{i}", icon=":material/refresh:", type="tertiary"):
        st.session_state["asking"] = messages[i - 1]["content"]
        del messages[i - 1 :]
        st.rerun()
    if answer is not None:
        with row:
            feedback(settings, i, messages[i - 1]["content"] if i else "", answer)


def feedback(settings: Settings, index: int, question: str, answer: Answer) -> None:
    from rag.feedback import FeedbackStore

    key = f"feedback-{index}"
    rating = st.feedback("thumbs", key=key)
    if rating is not None and st.session_state.get(f"{key}-saved") != rating:
        FeedbackStore(settings.feedback_path, settings.server.feedback_max_bytes).add(
            1 if rating == 1 else -1,
            question,
            answer.text,
            [c.to_json() for c in answer.citations],
            origin="ui",
        )
        st.session_state[f"{key}-saved"] = rating
        st.toast("Thanks for the feedback")


def main() -> None:
    compact = st.query_params.get("compact", "false").lower() == "true"
    st.set_page_config(page_title="Ask the documents", page_icon="📄", layout="centered",
                       initial_sidebar_state="collapsed" if compact else "auto")  # fmt: skip
    try:
        settings = load_settings()
    except SettingsError as exc:
        st.error(str(exc))
        return
    if not signed_in(settings):
        return
    catalog = Catalog(settings.catalog_path)
    if "conversation" not in st.session_state:
        start_conversation()
    load_conversations(settings)
    keep_stopped(settings)
    if "conversations" in st.session_state:  # our own fixed markup: the page has read the browser's store
        st.markdown('<span data-rag-loaded="conversations" hidden></span>', unsafe_allow_html=True)
    documents = catalog.documents()
    if not documents:
        if not Path(settings.corpus_dir).exists():
            st.error(
                f"The index is empty and there is no corpus at {settings.corpus_dir}: run `rag ingest PATH`."
            )
            return
        run_ingest(settings, "First start: indexing the default corpus…", [str(settings.corpus_dir)])
        documents = catalog.documents()
    filters: dict[str, Any] = {}
    k = settings.retrieval.k
    if not compact:
        st.title("Ask the documents")
        settings, filters, k = sidebar(settings, catalog, documents)
    else:
        with st.popover("Menu"):
            conversation_actions(settings)
    try:
        pipeline = get_pipeline(settings.model_dump_json())
    except RagError as exc:  # an unknown backend name, an unusable index: one line, not a traceback
        st.error(str(exc))
        return

    messages: list[dict[str, Any]] = st.session_state["messages"]
    for i, message in enumerate(messages):
        with st.chat_message(message["role"]):
            answer: Answer | None = message.get("answer")
            if answer is None:
                st.markdown(ui.escape_md(message["content"]))
            else:
                st.markdown(ui.answer_markdown(answer, f"m{i}"))
                ui.render_sources(answer, key=f"m{i}")
            if message.get("stopped"):
                st.caption("Stopped.")
            if message["role"] == "user":
                edit_question(i, message["content"])
            else:
                answer_actions(settings, i, messages)

    typed = st.chat_input("Ask a question about the documents")
    question = st.session_state.pop("asking", None) or typed  # an edited or regenerated question first
    if not messages and not question:
        # the operator's examples, else the questions the documents themselves ask (an FAQ's headings)
        examples = settings.ui.examples or catalog.questions()
        if examples:
            st.caption("Try one of these:")
            columns = st.columns(2)
            for n, example in enumerate(examples):
                if columns[n % 2].button(example, key=f"example-{n}", use_container_width=True):
                    question = example
        else:
            titles = [d.title for d in documents][:4]
            st.caption(
                "Ask about the indexed documents, for example: " + "; ".join(ui.escape_md(t) for t in titles)
            )
    if question:
        with st.chat_message("user"):
            st.markdown(ui.escape_md(question))
        with st.chat_message("assistant"):
            answer = ask(pipeline, question, filters, k)
        if answer is not None:
            messages += [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer.text, "answer": answer},
            ]
            remember(settings)
            st.rerun()

    opened = st.session_state.pop("open_document", None)
    if opened:
        show_document(settings, *opened)


main()
