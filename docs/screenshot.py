"""Draw the README's screenshot of the chat page (docs/screenshot.png): a company handbook (the handbook
suite's corpus, evals/corpora/handbook, not the default corpus), two past conversations in the sidebar and
a follow-up answered with its cited quote, its card opened from the answer's [1].

    .venv/bin/python docs/screenshot.py   # needs Debian's chromium, as the browser tests do
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest.indexer import ingest  # noqa: E402
from rag.settings import Settings  # noqa: E402
from tests.browser import ask, chat_page, chromium, settled  # noqa: E402

CORPUS = REPO / "evals" / "corpora" / "handbook" / "docs"
EARLIER = "Who should I contact about a reasonable accommodation?"
QUESTION = "How much annual leave do I build up each pay period after five years?"
FOLLOW_UP = "How much of it can I carry over to the next leave year?"


def main(out: Path = REPO / "docs" / "screenshot.png") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ingest([CORPUS], Settings(data_dir=root / "data"))
        with chat_page(root, CORPUS) as url, chromium(root / "profile") as page:
            page.set_viewport_size({"width": 1280, "height": 1000})
            page.goto(url)
            ask(page, EARLIER)
            page.get_by_test_id("stSidebar").get_by_role("button", name=EARLIER).wait_for()
            page.get_by_test_id("stSidebar").get_by_role("button", name="New conversation").click()
            page.get_by_test_id("stChatMessage").first.wait_for(state="detached")
            ask(page, QUESTION)
            page.get_by_test_id("stChatMessage").nth(1).get_by_role("link", name="[1]").first.wait_for()
            ask(page, FOLLOW_UP)
            answer = page.get_by_test_id("stChatMessage").nth(3)
            answer.get_by_role("link", name="[1]").first.wait_for()
            settled(page)
            answer.get_by_role("link", name="[1]").first.click()
            quote = answer.locator("details[open] strong").first  # the card's highlighted quote
            quote.wait_for()
            quote.scroll_into_view_if_needed()
            page.mouse.move(0, 0)
            page.wait_for_timeout(800)  # the card's opening animation
            page.screenshot(path=str(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
