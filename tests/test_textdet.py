"""Text detection: pure post-processing on hand-made maps, crops, page sets and metrics, the page reader."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from crnn import Recognizer
from crnn.decode import CharResult, Result
from crnn.errors import InvalidImageError, WeightsError
from crnn.preprocess import prepare, to_gray
from crnn.specs import DEFAULT_MODEL
from ocr.data.datasets import DatasetError
from ocr.data.page_sets import open_page_set
from ocr.eval.page_metrics import Tally, box_iou, match_boxes, words
from tests.conftest import encode
from tests.pages import render_page
from textdet import DEFAULT_DETECTOR, DETECTOR_SPECS, Detector, PageReader
from textdet.boxes import GlyphRecovery, group_lines, order_corners, reading_order, stray_glyphs, word_boxes
from textdet.crop import crop_line
from textdet.lines import darken_ink, spurious_spaces, tidy_spacing
from textdet.model import CRAFT
from textdet.specs import DetectionConfig


def rect(left: float, top: float, right: float, bottom: float) -> np.ndarray:
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float32)


def blob(shape: tuple[int, int], centre: tuple[int, int], radius: float, peak: float = 1.0) -> np.ndarray:
    """A Gaussian bump like CRAFT's region score for one character."""
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    return peak * np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * radius**2)).astype(np.float32)


# --- the network and its weights -------------------------------------------------------------------------------


def test_craft_maps_are_half_the_input_size() -> None:
    with torch.no_grad():
        out = CRAFT().eval()(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 2, 32, 48)


def test_detector_refuses_weights_with_the_wrong_checksum(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "craft.pth"
    torch.save(CRAFT().state_dict(), fake)
    spec = dataclasses.replace(DETECTOR_SPECS["craft_mlt_25k"], weights_file=lambda: fake)
    monkeypatch.setitem(DETECTOR_SPECS, "craft_mlt_25k", spec)
    with pytest.raises(WeightsError, match="checksum mismatch"):
        Detector("craft_mlt_25k", device="cpu", precision="fp32")


def test_db_detector_refuses_a_changed_byte(tmp_path, monkeypatch) -> None:
    original = DETECTOR_SPECS["ppocrv6_det_small"]
    data = bytearray(original.weights_file().read_bytes())
    data[len(data) // 2] ^= 1
    changed = tmp_path / "det.onnx"
    changed.write_bytes(bytes(data))
    spec = dataclasses.replace(original, weights_file=lambda: changed)
    monkeypatch.setitem(DETECTOR_SPECS, "ppocrv6_det_small", spec)
    with pytest.raises(WeightsError, match="checksum mismatch"):
        Detector("ppocrv6_det_small", device="cpu", precision="fp32")


def test_detector_rejects_unknown_names_and_tiny_limits() -> None:
    with pytest.raises(ValueError, match="unknown detector"):
        Detector("nope")
    with pytest.raises(ValueError, match="max_side"):
        Detector(config=DetectionConfig(max_side=8))


# --- maps to boxes ---------------------------------------------------------------------------------------------


def test_corners_come_clockwise_from_the_top_left() -> None:
    shuffled = np.array([[10, 5], [0, 0], [0, 5], [10, 0]], np.float32)
    assert order_corners(shuffled).tolist() == [[0, 0], [10, 0], [10, 5], [0, 5]]


def test_linked_characters_make_one_word_and_unlinked_ones_two() -> None:
    shape = (40, 80)
    region = blob(shape, (20, 20), 3) + blob(shape, (32, 20), 3)
    link = blob(shape, (26, 20), 2)
    assert len(word_boxes(region, link)) == 1
    assert len(word_boxes(region, np.zeros(shape, np.float32))) == 2
    box = word_boxes(region, link)[0]
    assert box[:, 0].min() < 17 and box[:, 0].max() > 35  # covers both characters


def test_faint_and_tiny_components_are_dropped() -> None:
    shape = (40, 80)
    faint = blob(shape, (20, 20), 3, peak=0.45)  # above low_text but never reaches the text threshold
    assert word_boxes(faint, np.zeros(shape, np.float32)) == []
    speck = np.zeros(shape, np.float32)
    speck[10, 10] = 1.0  # one pixel: under min_area
    assert word_boxes(speck, np.zeros(shape, np.float32)) == []
    with pytest.raises(ValueError, match="same|one shape"):
        word_boxes(np.zeros((4, 4), np.float32), np.zeros((4, 5), np.float32))


def test_a_tilted_word_gets_a_rotated_box() -> None:
    shape = (80, 120)
    region = sum(blob(shape, (20 + 12 * i, 60 - 6 * i), 3) for i in range(6))
    link = sum(blob(shape, (26 + 12 * i, 57 - 6 * i), 2) for i in range(5))
    (box,) = word_boxes(region, link)
    dx, dy = box[1] - box[0]
    assert dy < 0 and abs(dy / dx) == pytest.approx(0.5, abs=0.1)  # rises to the right, slope 1/2


def test_tilted_words_merge_along_their_direction() -> None:
    def tilted(x: float, width: float) -> np.ndarray:  # a word rising to the right at slope 1/4
        return order_corners(np.array([[x, 100 - x / 4], [x + width, 100 - (x + width) / 4],
                                       [x + width + 5, 120 - (x + width) / 4], [x + 5, 120 - x / 4]], np.float32))

    near, next_word, far = tilted(0, 80), tilted(100, 60), tilted(400, 60)
    lines = group_lines([near, next_word, far])
    assert len(lines) == 2
    merged = max(lines, key=lambda b: float(np.linalg.norm(b[1] - b[0])))
    assert np.linalg.norm(merged[1] - merged[0]) > 150  # both words, along their slope


def test_words_on_a_row_merge_into_lines_by_their_gap() -> None:
    left, near, far = rect(0, 0, 50, 20), rect(60, 1, 100, 21), rect(300, 0, 340, 20)
    below = rect(0, 40, 50, 60)
    tilted = np.array([[0, 100], [40, 80], [45, 90], [5, 110]], np.float32)
    lines = group_lines([left, near, far, below, tilted])
    extents = sorted((float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 0].max())) for b in lines)
    assert (0.0, 0.0, 100.0) in extents  # left + near: gap 10 < one height
    assert (300.0, 0.0, 340.0) in extents  # far stays apart
    assert (0.0, 40.0, 50.0) in extents  # next row
    assert any(np.array_equal(b, tilted) for b in lines)  # tilted words pass through
    assert len(lines) == 4


def test_reading_order_is_rows_then_left_to_right() -> None:
    boxes = [rect(200, 2, 260, 22), rect(0, 40, 50, 60), rect(0, 0, 50, 20)]
    assert reading_order(boxes) == [2, 0, 1]


def test_lone_glyphs_beside_a_line_are_found_but_not_specks_or_strays() -> None:
    page = np.full((200, 400), 255, np.uint8)
    page[50:70, 20:120] = 0  # a "line" the detector found
    page[54:66, 300:304] = 0  # a lone "1" on the same row
    page[150:162, 300:304] = 0  # the same mark on a row with no line
    page[58:60, 200:202] = 0  # a speck
    found = stray_glyphs(page, [rect(20, 50, 120, 70)])
    assert len(found) == 1 and 298 <= found[0][0, 0] <= 300 and found[0][2, 0] >= 303
    assert stray_glyphs(page, []) == []
    assert GlyphRecovery().keeps("1", 0.9) and GlyphRecovery().keeps(":", 0.9)
    assert not GlyphRecovery().keeps("'", 0.9) and not GlyphRecovery().keeps("1", 0.2)


# --- crops and line clean-ups ----------------------------------------------------------------------------------


def test_an_upright_box_is_sliced_with_its_margin() -> None:
    page = np.arange(200 * 300, dtype=np.uint32).reshape(200, 300).astype(np.uint8)
    crop, left = crop_line(page, rect(100, 50, 200, 70), margin=0.1)
    assert crop.shape == (24, 104) and left == pytest.approx(2.0)
    np.testing.assert_array_equal(crop, page[48:72, 98:202])


def test_a_rotated_box_comes_out_level() -> None:
    page = np.full((200, 200), 255, np.uint8)
    # A dark bar 80 x 10 rotated by 30 degrees about (100, 100).
    angle = np.deg2rad(30)
    along, across = np.array([np.cos(angle), -np.sin(angle)]), np.array([np.sin(angle), np.cos(angle)])
    corners = np.array([100 - 40 * along - 5 * across, 100 + 40 * along - 5 * across,
                        100 + 40 * along + 5 * across, 100 - 40 * along + 5 * across], np.float32)
    import cv2

    cv2.fillConvexPoly(page, corners.round().astype(np.int32), 0)
    crop, _ = crop_line(page, order_corners(corners), margin=0.1)
    assert crop.shape[1] > 5 * crop.shape[0]
    dark_rows = (crop < 128).mean(axis=1)
    assert dark_rows[crop.shape[0] // 2] > 0.8  # the bar runs along the middle row


def test_very_long_lines_get_enough_height_for_the_recogniser() -> None:
    page = np.full((100, 3000), 255, np.uint8)
    crop, _ = crop_line(page, rect(0, 40, 3000, 50))
    assert crop.shape[1] / crop.shape[0] <= 100
    flush, _ = crop_line(np.full((12, 3000), 255, np.uint8), rect(0, 0, 3000, 12))  # no page left to borrow
    sliver, _ = crop_line(np.full((3000, 40), 255, np.uint8), rect(10, 0, 11, 3000))
    for crop in (flush, sliver):
        assert max(crop.shape) / min(crop.shape) <= 100
        prepare(crop, 64)  # the recogniser takes it


def test_darkening_pushes_grey_ink_darker_on_either_background() -> None:
    line = np.full((20, 60), 230, np.uint8)
    line[8:12, 10:50] = 140
    darker = darken_ink(line)
    assert darker[10, 30] < 60 and darker[0, 0] > 200
    inverted = darken_ink(255 - line)
    assert inverted[10, 30] > 195 and inverted[0, 0] < 55


@pytest.mark.parametrize(("text", "tidy"), [
    ("KEMBANGAN , SELANGOR", "KEMBANGAN, SELANGOR"),
    ("RECEIPT .", "RECEIPT."),
    ("RM 33, 92", "RM 33,92"),
    ("8 . 02", "8.02"),
    ("NO : 42", "NO : 42"),
    ("A, B", "A, B"),
    ("  TWO   SPACES ", "TWO SPACES"),
    ("Mr. Smith", "Mr. Smith"),
])
def test_spurious_spaces(text: str, tidy: str) -> None:
    kept = [c for i, c in enumerate(text) if i not in set(spurious_spaces(text))]
    assert "".join(kept) == tidy


def test_tidy_spacing_keeps_characters_in_step_with_text() -> None:
    chars = [CharResult(c, 1.0, i, i + 1) for i, c in enumerate("AB ,")]
    tidy = tidy_spacing(Result("AB ,", 0.9, chars))
    assert tidy.text == "AB," and [c.text for c in tidy.chars] == ["A", "B", ","]


# --- page sets and scores --------------------------------------------------------------------------------------


def _page_set(tmp_path, boxes_name: str, content: str):
    (tmp_path / "images").mkdir(parents=True)
    (tmp_path / "boxes").mkdir()
    (tmp_path / "images" / "p1.png").write_bytes(encode(np.full((20, 20), 255, np.uint8)))
    (tmp_path / "boxes" / boxes_name).write_text(content, encoding="utf-8")
    return open_page_set(tmp_path)


def test_page_sets_read_sroie_icdar_and_json_box_files(tmp_path) -> None:
    (sroie,) = _page_set(tmp_path / "a", "p1.csv", "1,2,30,2,30,12,1,12,TOTAL: 1,234.00\n")
    assert sroie.lines[0].text == "TOTAL: 1,234.00" and sroie.lines[0].box[2].tolist() == [30, 12]
    (icdar,) = _page_set(tmp_path / "b", "gt_p1.txt", '\ufeff5,6,50,20,"HELLO"\n7,8,9,10,###\n')
    assert icdar.lines[0].text == "HELLO" and icdar.lines[0].box[1].tolist() == [50, 6]
    assert icdar.lines[1].dont_care
    entries = [{"box": [[0, 0], [9, 0], [9, 5], [0, 5]], "text": "JSON"}]
    (as_json,) = _page_set(tmp_path / "c", "p1.json", json.dumps({"lines": entries}))
    assert as_json.lines[0].text == "JSON"


def test_page_sets_name_the_file_and_line_that_is_wrong(tmp_path) -> None:
    with pytest.raises(DatasetError, match=r"p1\.csv:2"):
        _page_set(tmp_path / "a", "p1.csv", "1,2,3,4,5,6,7,8,OK\nnot,a,box\n")
    with pytest.raises(DatasetError, match="no box file"):
        _page_set(tmp_path / "b", "other.csv", "1,2,3,4,5,6,7,8,OK\n")
    with pytest.raises(DatasetError, match="images/"):
        open_page_set(tmp_path / "nothing")


def test_box_iou_and_one_to_one_matching() -> None:
    a = rect(0, 0, 10, 10)
    assert box_iou(a, a) == pytest.approx(1.0)
    assert box_iou(a, rect(20, 20, 30, 30)) == 0.0
    assert box_iou(a, rect(5, 0, 15, 10)) == pytest.approx(1 / 3)
    # Two predictions over one truth box: only one may match it.
    assert match_boxes([a, rect(0, 0, 10, 9)], [a]) == [(0, 0)]


def test_word_scores_count_multisets_case_and_dont_care() -> None:
    assert words("Total total TOTAL: 9") == {"total": 2, "total:": 1, "9": 1}
    tally = Tally()
    box = rect(0, 0, 10, 10)
    ignored = rect(100, 100, 110, 110)
    tally.add_page([box, ignored], ["Total 9.00 9.00", "junk"], [box, ignored], ["TOTAL 9.00", "###"],
                   [False, True])
    s = tally.summary()
    assert (tally.words_matched, tally.words_predicted, tally.words_expected) == (2, 3, 2)
    assert s["word_recall"] == 1.0 and s["word_precision"] == pytest.approx(2 / 3)
    assert s["word_f1_cased"] < s["word_f1"]  # "Total" is not "TOTAL" when case counts
    assert (s["det_precision"], s["det_recall"]) == (1.0, 1.0)  # the prediction over ### is set aside


# --- the page reader with the real models ----------------------------------------------------------------------


#: The default pair, and CRAFT with the recogniser it was tuned with.
READERS = [(DEFAULT_DETECTOR, DEFAULT_MODEL), ("craft_mlt_25k", "english_g2")]


@pytest.fixture(scope="module", params=READERS, ids=[d for d, _ in READERS])
def page_reader(request) -> PageReader:
    detector, model = request.param
    return PageReader(Recognizer(model, device="cpu", precision="fp32"), Detector(detector, "cpu", "fp32"))


def test_a_rendered_page_is_read_line_by_line_in_reading_order(page_reader: PageReader) -> None:
    rows = [(40, 40, "INVOICE 2024"), (360, 120, "PAID"), (40, 120, "TOTAL 12.50"), (40, 300, "THANK YOU")]
    page, truth = render_page(rows)
    lines = page_reader.read([page])[0]
    assert [line.text.upper() for line in lines] == ["INVOICE 2024", "TOTAL 12.50", "PAID", "THANK YOU"]
    for line, expected in zip(lines, [truth[0], truth[2], truth[1], truth[3]]):
        assert box_iou(np.array(line.box, np.float32), expected) > 0.5  # DB boxes keep a margin around the ink
        # Spans are measured along the line, not in page columns (those would start at 40 or more); a stride-8
        # recogniser's first spike can come a frame late, hence the slack.
        assert line.chars and line.chars[0].x_start < 20


@pytest.mark.parametrize("angle", [12, -20])
def test_tilted_lines_are_read_whole_and_in_order(page_reader: PageReader, angle: float) -> None:
    page, _ = render_page([(60, 200, "ROTATED TEXT 42"), (60, 300, "SECOND LINE 7")], angle=angle)
    lines = page_reader.read([page])[0]
    assert [line.text.upper() for line in lines] == ["ROTATED TEXT 42", "SECOND LINE 7"]
    (x0, y0), (x1, y1) = lines[0].box[:2]
    assert np.degrees(np.arctan2(y0 - y1, x1 - x0)) == pytest.approx(angle, abs=4)  # the box follows the text


def test_an_upside_down_page_is_read_turned_and_in_order(page_reader: PageReader) -> None:
    page, _ = render_page([(60, 200, "ROTATED TEXT 42"), (60, 300, "SECOND LINE 7")], angle=180)
    lines = page_reader.read([page])[0]
    assert " ".join(line.text.upper() for line in lines) == "ROTATED TEXT 42 SECOND LINE 7"  # CRAFT may split a line
    (x0, _), (x1, _) = lines[0].box[:2]
    assert x1 < x0  # the box starts where the (turned) line starts: at its right end on the page
    assert PageReader(page_reader.recognizer, page_reader.detector, flip_share=0).read([page])[0][0].text.upper() != (
        "ROTATED TEXT 42")
    # Under an allowlist confidences say little about orientation: the page is read as it comes.
    assert page_reader.maybe_upside_down(page_reader.cut(page), [Result("", 0.0)] * 2, constrained=True) == []


def test_page_lines_carry_the_page_floor_and_read_as_they_would_alone(page_reader: PageReader) -> None:
    """A page's lines (and their darkened and turned second looks) are padded to the model's page floor; mixed
    with crops in one call, every line and crop reads as it does alone (batches hold one run width each)."""
    recognizer = page_reader.recognizer
    page, _ = render_page([(40, 40, "PAID"), (40, 120, "TOTAL 12.50")])
    cuts = page_reader.cut(page)
    floor = recognizer.page_min_width
    assert floor == (128 if recognizer.model.name == "ppocrv6_small" else None)
    assert cuts and all(cut.image.min_width == floor for cut in cuts)
    assert page_reader.flipped(cuts[0]).image.min_width == floor and page_reader.darkened(cuts[0]).min_width == floor
    lines = [cut.image for cut in cuts]
    crops = [dataclasses.replace(image, min_width=None) for image in lines]  # the same pixels, sent as crops
    if floor is not None:
        short = min(lines, key=lambda image: image.width)
        assert recognizer.run_width(short) == max(floor, 64 * -(-short.width // 64)) < recognizer.run_width(
            dataclasses.replace(short, min_width=None))
    together = recognizer.recognize_prepared(crops + lines)
    alone = [recognizer.recognize_prepared([image])[0] for image in crops + lines]
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.confidence for r in together] == pytest.approx([r.confidence for r in alone], abs=1e-3)


def test_pages_without_text_give_no_lines_and_bad_images_are_refused(page_reader: PageReader) -> None:
    blank, one_pixel = np.full((300, 400), 255, np.uint8), np.zeros((1, 1), np.uint8)
    assert page_reader.read([blank, one_pixel]) == [[], []]
    with pytest.raises(InvalidImageError, match="empty"):
        to_gray(b"")


def test_big_pages_are_scaled_down_for_detection_only(page_reader: PageReader) -> None:
    page, _ = render_page([(200, 600, "LARGE PAGE 77")], size=(3000, 2000), font_size=90)
    assert page_reader.detector.scale(3000, 2000) < 0.75
    (line,) = page_reader.read([page])[0]
    assert line.text.upper() == "LARGE PAGE 77"
    assert 170 <= line.box[0][0] <= 215  # boxes come back in the page's own pixels (DB's with a margin)


def test_min_confidence_and_allowlist_apply_to_every_line(page_reader: PageReader) -> None:
    page, _ = render_page([(40, 40, "CODE 4711")])
    (digits,) = page_reader.read([page], allowlist="0123456789 ")[0]
    assert set(digits.text) <= set("0123456789 ") and "4711" in digits.text
    (rejected,) = page_reader.read([page], min_confidence=1.0)[0]
    assert rejected.rejected and rejected.text == ""


#: Floors for word F1 and detection recall on the first three shared receipts (fp32), a little under what each
#: pair read when last measured: CRAFT + english_g2 word F1 0.629; DB + PP-OCRv6 small 0.883 (det recall 0.836).
RECEIPT_GUARDS = {"craft_mlt_25k": (0.61, 0.70), DEFAULT_DETECTOR: (0.86, 0.80)}


def test_whole_receipts_keep_their_measured_word_f1(page_reader: PageReader) -> None:
    """A guard on the shared receipts: each detector and recogniser pair keeps the word F1 it was measured at."""
    from ocr.eval.pages import evaluate_pages
    from tests.conftest import shared_set

    pages = open_page_set(shared_set("sroie_receipts_full_part1"))
    result = evaluate_pages(page_reader, pages, limit=3, progress=False)
    assert result.pages == 3 and not result.errors
    f1, recall = RECEIPT_GUARDS[page_reader.detector.spec.name]
    assert result.scores["word_f1"] >= f1
    assert result.scores["det_recall"] >= recall
