"""Take the README's screenshots in headless Chromium (Debian's, through Playwright), with today's defaults:

* docs/img/web_page_detect.png: the try-it page reading a synthetic receipt with "Whole pages" ticked (the default
  recogniser and detector of ``ocr serve``);
* docs/img/label_review.png: ``ocr label --review`` on the bundled example crops, a few reviewed.

    python scripts/tools/web_screenshots.py
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from crnn.specs import DEFAULT_MODEL  # noqa: E402
from ocr.cli import main as ocr_main  # noqa: E402
from ocr.label.review import ReviewApp  # noqa: E402
from server.app import OcrServer  # noqa: E402
from server.config import ServerConfig  # noqa: E402
from tests.conftest import encode  # noqa: E402
from tests.pages import render_page  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
RECEIPT = [(150, 40, "CORNER SHOP LTD"), (120, 90, "12 HIGH STREET, LEEDS"), (40, 170, "2 COFFEE"),
           (420, 170, "7.00"), (40, 215, "1 BAGEL"), (420, 215, "3.25"), (40, 260, "TAX 8%"), (420, 260, "0.82"),
           (40, 330, "TOTAL"), (420, 330, "11.07"), (40, 400, "CARD **** 4921"), (150, 470, "THANK YOU!")]


def in_thread(start):
    """Run an async server on its own loop thread; returns (loop, result of ``start``)."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return loop, asyncio.run_coroutine_threadsafe(start, loop).result(300)


def main() -> None:
    if CHROMIUM is None:
        sys.exit("no Chromium: apt-get install chromium")
    work = Path(tempfile.mkdtemp())
    receipt = work / "receipt.png"
    receipt.write_bytes(encode(render_page(RECEIPT, size=(600, 540), font_size=28)[0]))
    server = OcrServer(ServerConfig(port=0, http_port=0, models=(DEFAULT_MODEL,)))
    loop, _ = in_thread(server.start())
    crops = work / "crops"
    shutil.copytree(ROOT / "examples" / "images", crops)
    assert ocr_main(["label", str(crops)]) == 0
    review = ReviewApp(crops)
    review_loop, review_port = in_thread(review.start("127.0.0.1", 0))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{server.http.port}/")
        page.check("#detect")
        page.set_input_files("#files", str(receipt))
        page.wait_for_selector(".result.page .line-box polygon", state="attached", timeout=120_000)
        page.wait_for_timeout(300)  # let the image settle
        page.screenshot(path=str(ROOT / "docs" / "img" / "web_page_detect.png"), full_page=True)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(f"http://127.0.0.1:{review_port}/")
        page.wait_for_selector("body[data-ready]")
        page.keyboard.press("Control+A")
        page.keyboard.type("OCR-42")
        page.keyboard.press("Enter")
        page.wait_for_selector('#counts[data-reviewed="1"]')
        page.keyboard.press("Enter")
        page.wait_for_selector('#counts[data-reviewed="2"]')
        page.wait_for_timeout(300)
        page.screenshot(path=str(ROOT / "docs" / "img" / "label_review.png"))
        browser.close()
    asyncio.run_coroutine_threadsafe(review.stop(), review_loop).result(30)
    asyncio.run_coroutine_threadsafe(server.stop(5), loop).result(60)
    shutil.rmtree(work, ignore_errors=True)
    print("wrote docs/img/web_page_detect.png and docs/img/label_review.png")


if __name__ == "__main__":
    main()
