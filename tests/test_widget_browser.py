"""The wiki widget in headless Chromium: the demo page, a question typed into the chat box, the streamed
answer with a numbered citation that expands to its quote; corpus text that looks like HTML stays text."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from rag.api import create_app
from rag.feedback import FeedbackStore
from rag.generators.extractive import ExtractiveGenerator
from rag.pipeline import build_pipeline
from rag.settings import Settings

from .conftest import DefaultIndex
from .test_api import KEY, Scripted, ingested, running, server_settings

CHROMIUM = "/usr/bin/chromium"
PAYLOAD = "<img src=x onerror=alert(1)>"
ZEBRA = f"""---
title: Zebra handbook <b>bold</b>
---
# The Zebra project

The Zebra project's launch code is {PAYLOAD} and it is kept in the office safe.

Only the project lead may open the safe.
"""

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (`apt-get install chromium`)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})  # a fresh profile each test
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture(scope="module")
def corpus_settings(tmp_path_factory: pytest.TempPathFactory, default_index: DefaultIndex) -> Settings:
    data_dir = default_index.copy(tmp_path_factory.mktemp("widget") / "data")  # its own feedback store
    return server_settings(data_dir, server={"browser_keys": [KEY]})  # the demo page is the server's own


@pytest.fixture(scope="module")
def corpus_url(corpus_settings: Settings) -> Iterator[str]:
    with running(create_app(corpus_settings)) as url:
        yield url


@pytest.fixture(scope="module")
def payload_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("widget-payload")
    (root / "docs").mkdir()
    (root / "docs" / "zebra.md").write_text(ZEBRA, encoding="utf-8")
    data_dir = ingested(root / "data", root / "docs")
    with running(create_app(server_settings(data_dir))) as url:  # no keys: open to loopback clients
        yield url


def open_demo(page: Page, url: str, key: str | None = None) -> None:
    """The demo page; the key, when given, typed into its form (kept in local storage, never in the URL)."""
    page.goto(f"{url}/widget/demo")
    if key:
        page.get_by_label(re.compile("^API key for this demo")).fill(key)
        page.get_by_role("button", name="Use key").click()
        page.wait_for_load_state()
    assert key is None or key not in page.url


def ask_in_widget(page: Page, question: str) -> None:
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    box = page.get_by_label("Your question")
    expect(box).to_be_focused()
    box.fill(question)
    box.press("Enter")


def test_widget_answers_with_a_citation(
    page: Page, corpus_url: str, corpus_settings: Settings, tmp_path: Path
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    open_demo(page, corpus_url, KEY)
    expect(page.get_by_role("heading", name="Ask the assistant")).to_be_visible()
    ask_in_widget(page, "How much funding was returned?")

    answer = page.locator("[data-rag-widget] .msg.bot")
    expect(answer.locator(".text")).to_contain_text("£500,000")
    expect(answer).not_to_have_attribute("aria-busy", "true")  # the `done` event arrived
    marker = answer.get_by_role("button", name="Show source 1")
    expect(marker).to_be_visible()
    chip = answer.locator(".sources .chip").first
    expect(chip).to_contain_text("1")
    expect(chip).to_have_attribute("aria-expanded", "false")
    marker.click()  # the [1] in the text opens source 1
    expect(chip).to_have_attribute("aria-expanded", "true")
    detail = answer.locator(".sources .detail").first
    expect(detail).to_be_visible()
    expect(detail.locator("blockquote")).to_contain_text(
        "the £500,000 of funding that had been received was returned"
    )
    expect(detail).to_contain_text("smart military bases")  # the article's title
    page.screenshot(path=str(tmp_path / "widget.png"))
    assert (tmp_path / "widget.png").stat().st_size > 10_000

    answer.get_by_role("button", name="Helpful", exact=True).click()
    expect(answer).to_contain_text("Thanks for the feedback.")
    (stored,) = FeedbackStore(corpus_settings.feedback_path).all()
    assert (stored.rating, stored.question, stored.origin) == (1, "How much funding was returned?", "api")
    assert "£500,000" in stored.answer and stored.citations[0]["marker"] == 1
    assert errors == []


def test_thread_comments_show_their_author(page: Page, corpus_url: str) -> None:
    open_demo(page, corpus_url, KEY)
    ask_in_widget(page, "Which comments are edited?")
    answer = page.locator("[data-rag-widget] .msg.bot")
    expect(answer).not_to_have_attribute("aria-busy", "true")
    chip = answer.locator(".sources .chip").first
    expect(chip).to_contain_text(re.compile(r"@[\w.]+ \(comment\)"))
    chip.click()
    expect(answer.locator(".sources .detail").first.locator(".who")).to_contain_text(
        re.compile(r"Comment by \S+@\S+ \(\d+ up, \d+ down\)")
    )


def test_corpus_html_is_rendered_as_text(page: Page, payload_url: str, tmp_path: Path) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_demo(page, payload_url)
    ask_in_widget(page, "What is the Zebra project's launch code?")
    answer = page.locator("[data-rag-widget] .msg.bot")
    expect(answer).not_to_have_attribute("aria-busy", "true")
    # the tag is Markdown's inline HTML: markup, dropped at ingest, so it reaches no page
    expect(answer.locator(".text")).to_contain_text("launch code is and it is kept")
    chip = answer.locator(".sources .chip").first
    expect(chip).to_contain_text("Zebra handbook <b>bold</b>")
    chip.click()
    expect(answer.locator(".sources .detail blockquote").first).to_contain_text("launch code is and it is")
    expect(answer.locator(".sources .detail blockquote").first).not_to_contain_text("onerror")
    page.screenshot(path=str(tmp_path / "payload.png"))
    created = page.evaluate(
        """() => {
            const root = document.querySelector("[data-rag-widget]").shadowRoot;
            return root.querySelectorAll("img, b").length + document.querySelectorAll("img, b").length;
        }"""
    )
    assert created == 0 and dialogs == []


def test_docs_work_offline_under_the_pages_policy(page: Page, corpus_url: str) -> None:
    """/docs renders every operation with nothing fetched from outside the server and no CSP violation."""
    outside: list[str] = []
    console: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(corpus_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()  # this machine is offline to everything else

    page.route("**/*", only_the_server)
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.goto(f"{corpus_url}/docs")
    expect(page.locator(".opblock-summary-path", has_text="/v1/ask/stream")).to_be_visible()
    expect(page.locator(".opblock")).to_have_count(12)
    assert outside == [] and console == []


def test_a_key_typed_into_the_demo_stays_out_of_the_address(page: Page, corpus_url: str) -> None:
    open_demo(page, corpus_url, KEY)
    assert page.evaluate("() => localStorage.getItem('rag-demo-key')") == KEY
    history = page.evaluate("() => location.href")
    assert KEY not in history
    page.get_by_role("button", name="Forget key").click()
    page.wait_for_load_state()
    assert page.evaluate("() => localStorage.getItem('rag-demo-key')") is None


def test_a_pushed_page_is_cited_with_a_link_to_the_wiki(
    page: Page, tmp_path: Path, default_index: DefaultIndex
) -> None:
    settings = server_settings(
        default_index.copy(tmp_path / "data"), server={"browser_keys": [KEY], "admin_keys": ["admin"]}
    )
    wiki_page = "https://wiki.example.com/Team/On-call"
    content = (
        "# On-call rotation\n\n## Hand-over\n\nThe Zephyr team's on-call rotation changes every Thursday at "
        "09:00. The hand-over happens in the Zephyr channel and takes about fifteen minutes.\n"
    )
    with running(create_app(settings)) as url:
        put = httpx.put(
            f"{url}/v1/documents/on-call", json={"content": content, "url": wiki_page},
            headers={"Authorization": "Bearer admin"}, timeout=120,
        )  # fmt: skip
        assert put.status_code == 200
        open_demo(page, url, KEY)
        ask_in_widget(page, "When does the Zephyr team's on-call rotation change?")
        answer = page.locator("[data-rag-widget] .msg.bot")
        expect(answer.locator(".text")).to_contain_text("Thursday at 09:00")
        chip = answer.locator(".sources .chip").first
        expect(chip).to_contain_text("On-call rotation › Hand-over")  # title › section
        chip.click()
        link = answer.locator(".sources .detail a.where").first
        expect(link).to_have_attribute("href", wiki_page + "#hand-over")
        expect(link).to_have_attribute("rel", "noopener noreferrer")
        expect(link).to_have_text("On-call rotation")  # the page's title, not its path

        # a follow-up answered by another sentence of the same page: its card shows that quote too
        box = page.get_by_label("Your question")
        box.fill("And where does the hand-over happen?")
        box.press("Enter")
        second = page.locator("[data-rag-widget] .msg.bot").nth(1)
        expect(second.locator(".text")).to_contain_text("Zephyr channel")
        expect(second).not_to_have_attribute("aria-busy", "true")
        second.locator(".sources .chip").first.click()
        quotes = second.locator(".sources .detail").first.locator("blockquote")
        expect(quotes.filter(has_text="hand-over happens in the Zephyr channel")).to_have_count(1)


FAQ = """# IT FAQ

## How do I reset my password?

Open the account portal and choose Reset. A new password must have at least 14 characters.

## Who approves new laptops?

Your manager approves new laptops.
"""


def test_the_widget_greets_with_questions_that_fit_the_corpus(page: Page, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "it-faq.md").write_text(FAQ, encoding="utf-8")
    data_dir = ingested(tmp_path / "data", tmp_path / "docs")
    with running(create_app(server_settings(data_dir))) as url:
        assert httpx.get(f"{url}/v1/examples").json() == {"questions": ["How do I reset my password?"]}
        page.goto(f"{url}/widget/demo")
        page.get_by_role("button", name=re.compile("^Open chat")).click()
        widget = page.locator("[data-rag-widget]")
        expect(widget.locator(".greeting")).to_have_text("Ask a question about the documents.")
        example = widget.get_by_role("button", name="How do I reset my password?")
        example.click()
        answer = widget.locator(".msg.bot")
        expect(answer.locator(".text")).to_contain_text("account portal")
        expect(widget.locator(".examples")).to_have_count(0)  # gone once the conversation started
        widget.get_by_role("button", name="New conversation").click()
        expect(widget.get_by_role("button", name="How do I reset my password?")).to_be_visible()


def test_the_conversation_survives_a_reload(page: Page, corpus_url: str) -> None:
    open_demo(page, corpus_url, KEY)
    ask_in_widget(page, "How much funding was returned?")
    widget = page.locator("[data-rag-widget]")
    expect(widget.locator(".msg.bot").first).not_to_have_attribute("aria-busy", "true")
    page.reload()
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    expect(widget.locator(".msg.user .q")).to_have_text(["How much funding was returned?"])
    expect(widget.locator(".msg.bot .text").first).to_contain_text("£500,000")
    expect(widget.locator(".greeting")).to_have_count(0)
    box = page.get_by_label("Your question")
    box.fill("When was that?")  # a follow-up: the restored conversation is its context
    box.press("Enter")
    expect(widget.locator(".msg.bot").nth(1).locator(".text")).to_contain_text("October 2021")
    expect(widget.locator(".msg.bot").nth(1)).not_to_have_attribute("aria-busy", "true")
    # edit the first question: it goes back into the box, the conversation from it on goes, and it is
    # asked again as edited (kept so across a reload)
    widget.get_by_role("button", name="Edit: How much funding was returned?").click()
    expect(widget.locator(".msg")).to_have_count(0)
    expect(box).to_have_value("How much funding was returned?")
    box.fill("Who led the joint centre?")
    box.press("Enter")
    expect(widget.locator(".msg.user .q")).to_have_text(["Who led the joint centre?"])
    expect(widget.locator(".msg.bot")).to_have_count(1)
    expect(widget.locator(".msg.bot").first).not_to_have_attribute("aria-busy", "true")
    page.reload()
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    expect(widget.locator(".msg.user .q")).to_have_text(["Who led the joint centre?"])
    widget.get_by_role("button", name="New conversation").click()
    page.reload()
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    expect(widget.locator(".msg.user")).to_have_count(0)


def test_copy_regenerate_and_stop(browser: Browser, tmp_path: Path, default_index: DefaultIndex) -> None:
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(60_000)
    settings = server_settings(
        default_index.copy(tmp_path / "data"), server={"browser_keys": [KEY]}, generator={"fallback": False}
    )
    generator = Scripted()  # the extractive answer, held after its first sentence when told to
    pipeline = build_pipeline(settings, generator=generator)
    generator.inner = ExtractiveGenerator(pipeline.scorer, settings.answer)
    try:
        with running(create_app(settings, pipeline)) as url:
            open_demo(page, url, KEY)
            ask_in_widget(page, "How much funding was returned?")
            widget = page.locator("[data-rag-widget]")
            answer = widget.locator(".msg.bot")
            expect(answer).not_to_have_attribute("aria-busy", "true")

            answer.get_by_role("button", name="Copy").click()
            expect(answer.get_by_role("button", name="Copied")).to_be_visible()
            copied = page.evaluate("navigator.clipboard.readText()")
            assert "£500,000" in copied and "\nSources:\n[1] " in copied and "“" in copied, copied

            answer.evaluate("node => { node.dataset.before = 'yes'; }")
            answer.get_by_role("button", name="Regenerate").click()
            expect(widget.locator(".msg.bot[data-before]")).to_have_count(0)  # replaced, not added
            expect(widget.locator(".msg.bot")).to_have_count(1)
            expect(widget.locator(".msg.bot .text")).to_contain_text("£500,000")

            generator.mode = "gate"  # the next answer stops after its first sentence until released
            generator.gate.clear()
            box = page.get_by_label("Your question")
            box.fill("What did Imperial say about the partnership?")  # a three-sentence answer
            box.press("Enter")
            second = widget.locator(".msg.bot").nth(1)
            expect(second.locator(".text p")).not_to_have_count(0)  # the first sentence arrived
            arrived = second.locator(".text").inner_text()
            widget.get_by_role("button", name="Stop").click()
            expect(second).to_contain_text("Stopped.")
            assert arrived.strip() and arrived.strip() in second.locator(".text").inner_text()
            expect(widget.get_by_role("button", name="Ask", exact=True)).to_be_visible()
            generator.gate.set()
    finally:
        generator.gate.set()
        context.close()
