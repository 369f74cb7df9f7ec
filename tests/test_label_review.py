"""The review page of ``ocr label --review`` in a real headless Chromium (Debian's, through Playwright): review ten
readings by keyboard, correct two, undo one, reload, and the state holds; then ``ocr adapt`` trains on the folder.
Skips, saying why, without Playwright or Chromium."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from crnn import Recognizer
from ocr.cli import main
from ocr.label.drafts import draft_crops, folder_images
from ocr.label.review import ReviewApp
from ocr.label.store import LabelStore
from tests.server.conftest import named_crops
from tests.server.test_web_page import CHROMIUM, CHROMIUM_ARGS, sync_api

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")


@pytest.fixture
def review(tmp_path: Path, recognizer: Recognizer) -> Iterator[tuple[str, Path]]:
    """A folder of 16 crops with draft readings, and its review page served on a free loopback port."""
    folder = tmp_path / "crops"
    folder.mkdir()
    crops = named_crops(16)
    while len(crops) < 16:  # the bundled examples hold 8: take them twice
        crops += [(f"again_{name}", data) for name, data in crops[: 16 - len(crops)]]
    for i, (_, data) in enumerate(crops):
        (folder / f"{i:02d}.png").write_bytes(data)
    store = LabelStore(folder)
    draft_crops(store, recognizer, "english_g2", folder_images(folder, detect=False), None, None)
    loop = asyncio.new_event_loop()
    app = ReviewApp(folder)
    port = loop.run_until_complete(app.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/", folder
    asyncio.run_coroutine_threadsafe(app.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _wait_reviewed(page, count: int) -> None:
    page.wait_for_selector(f'#counts[data-reviewed="{count}"]', timeout=10_000)


def test_keyboard_review_survives_reload_and_feeds_adapt(review, tmp_path: Path, capsys) -> None:
    url, folder = review
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except sync_api.Error as exc:
            pytest.skip(f"{CHROMIUM} did not start: {str(exc).splitlines()[0]}")
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        page.wait_for_selector("body[data-ready]")
        shown = page.eval_on_selector_all(".item", "cards => cards.map(c => c.dataset.image)")
        order = [row.image for row in sorted(LabelStore(folder).rows().values(), key=lambda r: r.confidence)]
        assert shown == order  # least sure first
        assert page.evaluate("document.activeElement.classList.contains('text')")
        corrected = {}
        for i in range(10):
            if i in (1, 4):
                page.keyboard.press("Control+A")
                text = f"FIX{i}"
                page.keyboard.type(text)
                corrected[shown[i]] = text
            page.keyboard.press("Enter")
            _wait_reviewed(page, i + 1)
        page.keyboard.press("Escape")  # skip the 11th ...
        _wait_reviewed(page, 11)
        page.keyboard.press("Control+Z")  # ... and take that back
        _wait_reviewed(page, 10)
        assert page.get_attribute("#counts", "data-corrected") == "2"
        rows = LabelStore(folder).rows()
        assert {name: rows[name].text for name in shown[:10] if rows[name].status == "corrected"} == corrected
        assert sum(rows[name].status == "confirmed" for name in shown[:10]) == 8
        assert rows[shown[10]].status == "draft"

        page.reload()
        page.wait_for_selector("body[data-ready]")
        assert page.get_attribute("#counts", "data-reviewed") == "10"
        for name, text in corrected.items():
            card = page.query_selector(f'.item[data-image="{name}"]')
            assert card.get_attribute("data-status") == "corrected"
            assert card.query_selector(".text").input_value() == text
        current = page.evaluate("document.activeElement.closest('.item').dataset.image")
        assert rows[current].status == "draft"  # the review goes on where it stopped
        assert not errors
        browser.close()

    capsys.readouterr()
    code = main(["adapt", str(folder), "--base", "english_g2", "--max-steps", "1", "--max-minutes", "0.3",
                 "--max-forgetting", "1", "--batch-size", "4", "--out", str(tmp_path / "adapted")])
    assert code in (0, 3)  # installed or not, it ran
    report = json.loads((tmp_path / "adapted" / "report.json").read_text())
    assert report["data"]["train"] == 10  # the ten reviewed labels, not the six drafts
