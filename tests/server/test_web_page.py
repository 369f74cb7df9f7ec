"""The web page in a real headless Chromium: upload a crop, see its text and character boxes.

Uses Playwright's Python API pointed at the system Chromium (Debian's ``chromium``
package; ``make install`` installs it where it can). Skips, saying why, when
either is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from tests.server.conftest import named_crops

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[dev]')")
CHROMIUM = os.environ.get("OCR_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium, or set OCR_TEST_CHROMIUM)"
)
# Headless, as root in CI, and with nothing that reaches for the internet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except sync_api.Error as exc:  # a browser that cannot start here is the machine's problem, not the page's
            pytest.skip(f"{CHROMIUM} did not start: {str(exc).splitlines()[0]}")
        yield browser
        browser.close()


def test_upload_shows_text_confidence_and_boxes(http_running, browser, tmp_path: Path) -> None:
    name, data = named_crops(1)[0]
    image = tmp_path / Path(name).name
    image.write_bytes(data)
    with grpc.insecure_channel(http_running.target) as channel:
        request = ocr_pb2.RecognizeRequest(images=[ocr_pb2.Image(content=data, id=image.name)], char_details=True)
        expected = ocr_pb2_grpc.RecognizerStub(channel).Recognize(request, timeout=60).results[0]
    assert expected.text, "the crop should read as something"

    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone-sized screen
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(http_running.http_url + "/")
    page.wait_for_function("document.querySelector('#model').options[0].text.includes('english_g2')")
    page.set_input_files("#files", str(image))
    card = page.wait_for_selector(f'.result[data-id="{image.name}"]', timeout=30_000)
    assert card.query_selector(".text").inner_text() == expected.text
    assert f"{100 * expected.confidence:.1f}%" in card.query_selector(".meta").inner_text()
    page.wait_for_selector(".result .box", timeout=10_000)
    boxes = card.query_selector_all(".box")
    assert [b.get_attribute("data-char") for b in boxes] == [c.text for c in expected.chars]
    first = boxes[0].bounding_box()
    frame = card.query_selector(".frame").bounding_box()
    assert first is not None and frame is not None
    assert frame["x"] <= first["x"] < frame["x"] + frame["width"]  # drawn over the image, not beside it
    assert "read by english_g2" in page.inner_text("#status")
    assert not errors


def test_server_error_is_shown_not_swallowed(http_running, browser, tmp_path: Path) -> None:
    image = tmp_path / "corrupt.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    page = browser.new_page()
    page.goto(http_running.http_url + "/")
    page.set_input_files("#files", str(image))
    page.wait_for_selector("#status.error")
    assert "INVALID_ARGUMENT" in page.inner_text("#status")


def test_whole_pages_show_each_line_and_its_box(http_running, browser, tmp_path: Path) -> None:
    from tests.conftest import encode
    from tests.pages import render_page

    image = tmp_path / "page.png"
    image.write_bytes(encode(render_page([(40, 40, "INVOICE 2024"), (40, 120, "TOTAL 12.50")])[0]))
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(http_running.http_url + "/")
    page.check("#detect")
    page.set_input_files("#files", str(image))
    card = page.wait_for_selector('.result.page[data-id="page.png"]', timeout=60_000)
    assert [li.inner_text().upper() for li in card.query_selector_all(".lines li")] == ["INVOICE 2024", "TOTAL 12.50"]
    page.wait_for_selector(".line-box polygon", state="attached", timeout=10_000)
    outlines = card.query_selector_all(".line-box")
    frame = card.query_selector(".frame").bounding_box()
    first = outlines[0].bounding_box()
    assert len(outlines) == 2 and frame is not None and first is not None
    assert abs(first["x"] - frame["x"]) < 2 and abs(first["width"] - frame["width"]) < 2  # laid over the image
    whole = card.bounding_box()
    assert whole is not None and frame["width"] > 0.5 * whole["width"]  # the page large, not a narrow column
    page.screenshot(path=str(tmp_path / "page_mode.png"))
    assert not errors
