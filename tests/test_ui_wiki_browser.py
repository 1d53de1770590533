"""The chat page in a real browser on a team's wiki instead of the default corpus: handbook pages (front
matter, headings, links, inline HTML) published under a base URL, and a forum thread."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ingest.indexer import ingest
from rag.settings import Settings
from ui.components import WORD_JOINER

from .browser import ask, chat_page, chromium, follow_first_marker, needs_chromium, settled
from .conftest import REPO

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

HANDBOOK = REPO / "evals" / "corpora" / "handbook" / "docs"
PAGES = ["leave.md", "going-out-of-office.md", "work-schedules.md", "overtime.md"]
THREAD = Path(__file__).parent / "data" / "oncall-thread.txt"
BASE_URL = "https://wiki.example.org/"
# words of the default corpus, none of which these documents hold
DEFAULT_CORPUS_WORDS = re.compile(r"Imperial|Jari|lemmy|£500", re.IGNORECASE)

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def wiki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("wiki-browser")
    corpus = root / "handbook"
    corpus.mkdir()
    for name in PAGES:
        shutil.copy(HANDBOOK / name, corpus / name)
    shutil.copy(THREAD, corpus / THREAD.name)
    ingest([corpus], Settings(data_dir=root / "data"), base_url=BASE_URL)
    with chat_page(root, corpus) as url:
        yield url, root


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    with chromium(tmp_path / "profile") as page:
        yield page


def assert_nothing_foreign(text: str, root: Path) -> None:
    """No default-corpus text, no path of the server's machine, no raw Markdown heading or front matter."""
    assert not DEFAULT_CORPUS_WORDS.search(text), DEFAULT_CORPUS_WORDS.search(text)
    assert str(root) not in text and "/tmp/" not in text
    assert not re.search(r"^\s*#{1,6}\s", text, re.MULTILINE), "a raw Markdown heading"
    assert not re.search(r"^(---|title:|keywords:|redirect_from:)", text, re.MULTILINE), "front matter"


def in_view(locator: Locator) -> bool:
    return bool(
        locator.evaluate(
            "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; }"
        )
    )


def open_document(page: Page) -> Locator:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    settled(page)
    page.get_by_test_id("stExpander").first.click()
    button = page.get_by_role("button", name="Open the document").first
    dialog = page.get_by_role("dialog")
    for _ in range(
        2
    ):  # on a loaded machine a click during the expander's animation can miss; a user clicks again
        settled(page)
        button.click()
        try:
            dialog.wait_for(timeout=30_000)
            break
        except PlaywrightTimeout:
            continue
    dialog.wait_for()
    return dialog


def open_at_quote(page: Page, url: str, question: str, quote: str) -> tuple[Locator, Locator]:
    """Ask, open the first source's document: the dialog and the quote in it, in view."""
    page.goto(url)
    ask(page, question)
    page.get_by_text(quote).first.wait_for()
    dialog = open_document(page)
    in_place = dialog.locator("span", has_text=quote).first
    in_place.wait_for()
    assert in_view(in_place)
    return dialog, in_place


def test_a_handbook_answer_and_its_card(wiki: tuple[str, Path], page: Page) -> None:
    url, root = wiki
    page.goto(url)
    page.get_by_test_id("stChatInputTextArea").wait_for()
    page.get_by_text("Index: 5 documents").wait_for()
    assert_nothing_foreign(page.locator("body").inner_text(), root)

    ask(page, "How long before award leave expires?")
    page.get_by_text("expires one year after it is issued").first.wait_for()
    follow_first_marker(page)
    # the card names the page and its section, not a file of the server
    assert page.get_by_test_id("stExpander").first.get_by_text("Leave types › ").count() == 1
    assert_nothing_foreign(page.locator("body").inner_text(), root)


def test_a_handbook_page_opens_formatted_at_the_quote(wiki: tuple[str, Path], page: Page) -> None:
    url, root = wiki
    dialog, quote = open_at_quote(
        page, url, "How long before award leave expires?", "expires one year after it is issued"
    )
    assert quote.evaluate("e => getComputedStyle(e).backgroundColor") not in (
        "rgba(0, 0, 0, 0)",
        "transparent",
    )
    # formatted: the section's heading is a heading; the only link is the page's own address
    assert dialog.locator("h1, h2, h3, h4, h5, h6", has_text="Award leave").count() >= 1
    assert [a.get_attribute("href") for a in dialog.locator("a[href^='http']").all()] == [BASE_URL + "leave"]
    dialog.get_by_text("The whole document").click()
    dialog.get_by_text("Reasons someone can take leave").first.wait_for()
    whole = dialog.inner_text()
    assert_nothing_foreign(whole, root)
    assert "docs.google.com" not in whole and "](" not in whole and "<a " not in whole
    assert dialog.locator("a[href*='google']").count() == 0
    assert_nothing_foreign(page.locator("body").inner_text(), root)


def test_a_thread_opens_as_comments(wiki: tuple[str, Path], page: Page) -> None:
    url, root = wiki
    dialog, _ = open_at_quote(
        page, url, "How much does a public holiday add to the on-call allowance?", "adds 80 euros"
    )
    text = dialog.inner_text().replace(WORD_JOINER, "")  # the joiner that keeps addresses from linking
    # the comment under its author, votes and whom it replies to; none of the pasted page's chrome
    assert "mira@forum.example.org" in text and "9▲ 0▼" in text and "reply to tomas@forum.example.org" in text
    assert "arrow-up" not in text and "fedilink" not in text
    assert dialog.locator("a[href^='mailto:']").count() == 0
    dialog.get_by_text("The whole document").click()
    dialog.get_by_text("14▲ 1▼ · original poster").wait_for()
    dialog.get_by_text("Pages outside office hours can be swapped").wait_for()
    assert_nothing_foreign(dialog.inner_text(), root)


def test_the_compact_embed_has_a_menu(wiki: tuple[str, Path], page: Page) -> None:
    url, _ = wiki
    page.set_viewport_size({"width": 400, "height": 600})
    page.goto(url + "/?embed=true&compact=true")
    ask(page, "How long before award leave expires?")
    page.get_by_text("expires one year after it is issued").first.wait_for()
    page.get_by_role("button", name="Menu").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export conversation (Markdown)").click()
    assert "award leave" in Path(download.value.path()).read_text().lower()
    page.get_by_role("button", name="New conversation").click()  # the menu stays open after a download
    page.get_by_text("expires one year after it is issued").first.wait_for(state="detached")
