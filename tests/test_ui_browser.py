"""The chat in a real browser: Streamlit on a loopback port, driven by headless Chromium (Debian's
package) through Playwright. Waits for elements, never for time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ingest.indexer import ingest
from rag.settings import Settings

from .conftest import CORPUS, REPO, free_port, wait_http

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
POISON = (
    "# Party notes\n\nThe launch party menu was <img src=x onerror=\"document.title='pwned'\"> "
    "<script>document.title='pwned'</script> and lemon cake.\n"
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("ui-browser")
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "party.md").write_text(POISON)
    ingest([corpus], Settings(data_dir=root / "data"))
    port = free_port()
    env = {**os.environ, "RAG_DATA_DIR": str(root / "data"), "RAG_CORPUS_DIR": str(corpus)}
    command = [
        sys.executable, "-m", "streamlit", "run", str(REPO / "ui" / "app.py"), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.port", str(port), "--server.address", "127.0.0.1",
    ]  # fmt: skip
    with open(root / "streamlit.log", "wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
        try:
            wait_http(f"http://127.0.0.1:{port}/_stcore/health", timeout=120, proc=proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            args=FLAGS,
            viewport={"width": 1200, "height": 900},
        )
        page = context.new_page()
        page.set_default_timeout(120_000)
        yield page
        context.close()


def ask(page: Page, question: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.wait_for()
    box.fill(question)
    box.press("Enter")


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


def test_a_marker_links_to_its_source_card(server: str, page: Page) -> None:
    page.goto(server)
    ask(page, "How much funding was returned?")
    page.get_by_text("October 2021 after discussion").first.wait_for()
    marker = page.get_by_role("link", name="[1]").first
    href = marker.get_attribute("href") or ""
    assert href.startswith("#source-") and marker.get_attribute("target") in (None, "_self")
    # the cards render after the answer's text: wait for this one before following the link
    card = page.locator(f"[id='{href[1:]}']")
    card.first.wait_for(state="attached")
    assert card.count() == 1
    page.evaluate("window.scrollTo(0, 0)")
    marker.click()
    page.wait_for_function(f"location.hash === {href!r}")
    page.wait_for_function(
        f"""() => {{ const r = document.getElementById({href[1:]!r}).getBoundingClientRect();
                   return r.top >= 0 && r.top < window.innerHeight; }}"""
    )
