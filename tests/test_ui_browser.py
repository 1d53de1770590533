"""The chat page in a real browser, on the default corpus (with a document carrying HTML payloads)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ingest.indexer import ingest
from rag.settings import Settings

from .browser import ask, chat_page, chromium, follow_first_marker, needs_chromium
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
