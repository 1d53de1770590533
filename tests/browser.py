"""The chat page in a real browser: `rag ui`'s Streamlit on a loopback port, driven by headless Chromium
(Debian's package) through Playwright. Waits for elements, never for time."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import REPO, free_port, wait_http

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)


@contextlib.contextmanager
def chat_page(root: Path, corpus: Path, **settings: str) -> Iterator[str]:
    """The chat page over the index in root/data, on a loopback port (more settings as RAG_* variables:
    `RAG_UI__ADMINS='["*"]'`); its address."""
    port = free_port()
    env = {**os.environ, "RAG_DATA_DIR": str(root / "data"), "RAG_CORPUS_DIR": str(corpus), **settings}
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


@contextlib.contextmanager
def chromium(profile: Path, permissions: tuple[str, ...] = ()) -> Iterator[Page]:
    """A page of a fresh headless Chromium (its own profile), 1200x900, with the browser `permissions`
    granted (e.g. "clipboard-read")."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=FLAGS, viewport={"width": 1200, "height": 900},
            permissions=list(permissions),
        )  # fmt: skip
        page = context.new_page()
        page.set_default_timeout(120_000)
        yield page
        context.close()


def ask(page: Page, question: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.wait_for()
    settled(page)
    box.fill(question)
    box.press("Enter")


def settled(page: Page) -> None:
    """Wait until the page's script run is over (Streamlit marks it on the app's root element): a click
    during a run can be folded into a rerun that closes a dialog it opens. The first runs of a visit are
    over once the page has read the conversations this browser keeps (their arrival runs the page again)."""
    page.locator("[data-rag-loaded='conversations']").wait_for(state="attached")
    page.locator("[data-test-script-state='notRunning']").wait_for()


def follow_first_marker(page: Page) -> None:
    """Click the answer's first `[1]` marker: a same-page link to its one source card, which comes into view."""
    marker = page.get_by_role("link", name="[1]").first
    href = marker.get_attribute("href") or ""
    assert href.startswith("#source-") and marker.get_attribute("target") in (None, "_self")
    # the cards render after the answer's text: wait for this one before following the link
    card = page.locator(f"[id='{href[1:]}']")
    card.first.wait_for(state="attached")
    assert card.count() == 1
    page.evaluate("window.scrollTo(0, 0)")
    assert page.locator("[data-testid='stExpander'] details[open]").count() == 0
    marker.click()
    page.wait_for_function(f"location.hash === {href!r}")
    page.wait_for_function(
        f"""() => {{ const r = document.getElementById({href[1:]!r}).getBoundingClientRect();
                   return r.top >= 0 && r.top < window.innerHeight; }}"""
    )
    # and the card opens: its quote is shown
    page.locator(
        "[data-testid='stExpander'] details[open] [data-testid='stExpanderDetails']"
    ).first.wait_for()
