"""The chat page in a real browser, on the default corpus (with a document carrying HTML payloads)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from ingest.indexer import ingest
from rag.settings import Settings

from .browser import ask, chat_page, chromium, follow_first_marker, needs_chromium, settled
from .conftest import CORPUS

if TYPE_CHECKING:
    from playwright.sync_api import Page

POISON = (
    "# Party notes\n\nThe launch party menu was <img src=x onerror=\"document.title='pwned'\"> "
    "<script>document.title='pwned'</script> and lemon cake. Tickets from bob@evil.example, "
    "https://evil.example/tickets or www.evil.example.\n"
)

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("ui-browser")
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "party.md").write_text(POISON)
    ingest([corpus], Settings(data_dir=root / "data"))
    with chat_page(root, corpus) as url:
        yield url


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    with chromium(tmp_path / "profile") as page:
        yield page


def test_ask_click_citation_and_open_the_document(server: str, page: Page, tmp_path: Path) -> None:
    page.goto(server)
    ask(page, "How much funding was returned?")
    page.get_by_text("October 2021 after discussion").first.wait_for()
    page.get_by_test_id("stExpander").first.click()
    quote = page.locator("[data-testid='stExpanderDetails'] span", has_text="£500,000 of funding").first
    quote.wait_for()
    background = quote.evaluate("e => getComputedStyle(e).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent"), "the supporting quote is highlighted"
    page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
    page.get_by_role("button", name="Open the document").first.click()
    dialog = page.get_by_role("dialog")
    in_place = dialog.locator("span", has_text="£500,000 of funding").first
    in_place.wait_for()
    assert in_place.evaluate("e => getComputedStyle(e).backgroundColor") == background
    # the quote is in view as the document opens; the whole document is one click away
    assert in_place.evaluate(
        "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; }"
    )
    dialog.get_by_text("The whole document").click()
    dialog.get_by_text("Revelation of emails").wait_for()
    page.screenshot(path=str(tmp_path / "document.png"))
    assert (tmp_path / "chat.png").stat().st_size > 10_000


def test_document_payloads_stay_inert(server: str, page: Page) -> None:
    page.goto(server)
    ask(page, "What was on the launch party menu?")
    page.get_by_text("lemon cake", exact=False).first.wait_for()
    page.get_by_test_id("stExpander").first.click()
    # the tags are Markdown's inline HTML: markup, dropped at ingest like links and emphasis, never rendered
    page.get_by_text("The launch party menu was", exact=False).nth(1).wait_for()
    assert page.get_by_text("onerror", exact=False).count() == 0
    assert page.locator("img[src='x']").count() == 0
    assert page.title() != "pwned"
    # bare addresses in a document are text, in the card and in the document view
    page.get_by_text("evil.example/tickets", exact=False).first.wait_for()
    page.get_by_role("button", name="Open the document").first.click()
    page.get_by_role("dialog").get_by_text("The whole document").click()
    page.get_by_role("dialog").get_by_text("evil.example/tickets", exact=False).last.wait_for()
    assert page.locator("a[href*='evil']").count() == 0


def test_a_marker_links_to_its_source_card(server: str, page: Page) -> None:
    page.goto(server)
    ask(page, "How much funding was returned?")
    page.get_by_text("October 2021 after discussion").first.wait_for()
    follow_first_marker(page)


def test_an_uploaded_pdf_is_answered_from_within_the_page(tmp_path: Path, page: Page) -> None:
    """Who may write (ui.admins) adds a document from the page; it is indexed with progress and answered at
    once, from a corpus other than the default."""
    from .test_loaders import make_pdf

    corpus = tmp_path / "handbook"
    corpus.mkdir()
    (corpus / "travel.md").write_text("# Travel\n\nTrains are booked through the travel desk.\n")
    ingest([corpus], Settings(data_dir=tmp_path / "data"))
    pdf = tmp_path / "Parking Policy.pdf"
    pdf.write_bytes(make_pdf(["Parking policy", "Visitors park on level minus two of the north garage."]))
    with chat_page(tmp_path, corpus, RAG_UI__ADMINS='["*"]') as url:
        page.goto(url)
        page.get_by_test_id("stChatInputTextArea").wait_for()
        settled(page)
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(pdf))
        page.get_by_text("Indexed 1 documents").wait_for()
        settled(page)  # the run that indexed it is over: the question goes to the next one
        ask(page, "Where do visitors park?")
        page.get_by_text("level minus two of the north garage").first.wait_for()
        page.get_by_text("Parking Policy", exact=False).first.wait_for()  # its card, titled from the file


def test_past_conversations_survive_a_reload_and_reopen(tmp_path: Path, page: Page) -> None:
    """Kept in the browser (an anonymous page): reopen an earlier conversation after a reload, rename it,
    delete it. On a corpus other than the default."""
    corpus = tmp_path / "handbook"
    corpus.mkdir()
    (corpus / "travel.md").write_text("# Travel\n\nTrains are booked through the travel desk on floor 3.\n")
    (corpus / "leave.md").write_text("# Leave\n\nEvery employee gets 25 days of paid annual leave.\n")
    ingest([corpus], Settings(data_dir=tmp_path / "data"))
    with chat_page(tmp_path, corpus) as url:
        page.goto(url)
        ask(page, "How are trains booked?")
        page.get_by_text("travel desk on floor 3").first.wait_for()
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_role("button", name="How are trains booked?").wait_for()
        sidebar.get_by_role("button", name="New conversation").click()
        sidebar.get_by_text("Export conversation (Markdown)").wait_for(
            state="detached"
        )  # the new one is empty
        settled(page)
        ask(page, "How many days of annual leave do I get?")
        page.get_by_text("25 days of paid annual leave").first.wait_for()
        sidebar.get_by_role("button", name="How many days of annual leave do I get?").wait_for()

        page.reload()
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_role("button", name="How are trains booked?").click()
        page.get_by_text("travel desk on floor 3").first.wait_for()  # the earlier answer, with its card
        page.get_by_test_id("stExpander").first.wait_for()
        settled(page)

        def menu(title: str) -> None:
            """Open the "…" beside a conversation's title (again, if a run of the page closed it)."""
            row = sidebar.get_by_test_id("stHorizontalBlock").filter(
                has=page.get_by_role("button", name=title)
            )
            for _ in range(3):
                settled(page)
                row.get_by_role("button", name="…").click()
                try:
                    page.get_by_label("Name").wait_for(timeout=10_000)
                    return
                except PlaywrightTimeout:
                    continue
            page.get_by_label("Name").wait_for()

        menu("How are trains booked?")
        name = page.get_by_label("Name")
        name.fill("Booking trains")
        name.press("Enter")
        page.get_by_role("button", name="Rename").click()
        sidebar.get_by_role("button", name="Booking trains").wait_for()
        page.reload()
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_role("button", name="Booking trains").wait_for()  # the new name was kept
        settled(page)
        menu("Booking trains")
        page.get_by_role("button", name="Delete").click()
        sidebar.get_by_role("button", name="Booking trains").wait_for(state="detached")
        sidebar.get_by_role("button", name="How many days of annual leave do I get?").wait_for()


HANDBOOK = {
    "leave.md": "# Leave\n\nEvery employee gets 25 days of paid annual leave. Leave requests go through the HR "
    "portal. Unused days carry over until the end of March.\n",
    "travel.md": "# Travel\n\nTrains are booked through the travel desk on floor 3.\n",
    "salaries.md": "# Salary bands\n\n<table>\n<tr><th>Years of experience</th><th>Technical</th>"
    "<th>Non-technical</th></tr>\n<tr><td>More than 5</td><td>$90k</td><td>$70k</td></tr>\n"
    "<tr><td>Fewer than 5</td><td>$60k</td><td>$50k</td></tr>\n</table>\n",
}


def handbook(root: Path) -> Path:
    corpus = root / "handbook"
    corpus.mkdir()
    for name, text in HANDBOOK.items():
        (corpus / name).write_text(text)
    ingest([corpus], Settings(data_dir=root / "data"))
    return corpus


def test_copy_regenerate_edit_and_a_table_row_with_its_header(tmp_path: Path) -> None:
    corpus = handbook(tmp_path)
    with (
        chat_page(tmp_path, corpus) as url,
        chromium(tmp_path / "profile", ("clipboard-read", "clipboard-write")) as page,
    ):
        page.goto(url)
        ask(page, "How are trains booked?")
        page.get_by_text("travel desk on floor 3").first.wait_for()
        settled(page)
        page.get_by_role("button", name="Copy").click()
        page.get_by_text("Copied the answer and its sources").wait_for()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.startswith("Trains are booked through the travel desk on floor 3.") and "[1]" in copied
        assert "\n\nSources:\n[1] Travel (" in copied and "“Trains are booked" in copied, copied

        messages = page.get_by_test_id("stChatMessage")
        settled(page)
        page.get_by_role("button", name="Regenerate").click()  # replaced in place (test_ui.py checks how)
        page.get_by_text("Copied the answer and its sources").wait_for(state="detached")
        settled(page)
        messages.nth(1).get_by_text("travel desk on floor 3").first.wait_for()
        assert messages.count() == 2

        page.get_by_role("button", name="Edit").click()
        box = page.get_by_label("Your question", exact=True)
        box.fill("What is the non-technical salary with more than 5 years of experience?")
        page.get_by_role("button", name="Send", exact=True).click()
        # the edited question replaces the conversation from there on; a row of an HTML table in Markdown
        # is quoted with its header
        messages.nth(1).get_by_text("Years of experience: More than 5").first.wait_for()
        settled(page)
        assert messages.count() == 2 and "Non-technical: $70k" in messages.nth(1).inner_text()
        assert "non-technical salary" in messages.nth(0).inner_text()


def test_stop_ends_a_stream_and_keeps_what_arrived(tmp_path: Path) -> None:
    """An answer streams from an LLM (a fake speaking the OpenAI protocol on loopback) that pauses after its
    first sentence; Stop ends it there: what arrived stays, marked stopped, and the rest never shows."""
    import threading

    from .fakellm import FakeLLM, passages_of, sse

    corpus = handbook(tmp_path)
    gate = threading.Event()

    def reply(body: dict[str, object]) -> object:
        number = next(n for n, text in passages_of(body).items() if "annual leave" in text)
        return sse(
            f"Every employee gets 25 days of paid annual leave [{number}]. Leave requests",
            f" go through the HR portal [{number}].",
            gate=gate,
        )

    with FakeLLM.running() as llm:
        llm.script.append(reply)
        settings = {"RAG_GENERATOR__NAME": "openai", "RAG_GENERATOR__BASE_URL": llm.url,
                    "RAG_GENERATOR__FALLBACK": "false"}  # fmt: skip
        with chat_page(tmp_path, corpus, **settings) as url, chromium(tmp_path / "profile") as page:
            page.goto(url)
            ask(page, "How many days of annual leave do I get?")
            assistant = page.get_by_test_id("stChatMessage").nth(1)
            assistant.get_by_text("25 days of paid annual leave").wait_for()  # the first sentence arrived
            page.get_by_role("button", name="Stop").click()  # the LLM goes on after its pause (10 s)
            page.get_by_text("Stopped.").wait_for()
            settled(page)
            kept = page.get_by_test_id("stChatMessage").nth(1).inner_text()
            assert "25 days of paid annual leave" in kept and "HR portal" not in kept
            assert page.get_by_role("button", name="Stop").count() == 0
            # the stopped answer is part of the conversation: kept with it, and regenerated on demand
            page.get_by_test_id("stSidebar").get_by_role(
                "button", name="How many days of annual leave do I get?"
            ).wait_for()
    gate.set()
