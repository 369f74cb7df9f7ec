"""textdet: finding text lines in whole images (PP-OCRv6 DB, or CRAFT) so the recognisers can read pages.

    from crnn import Recognizer
    from textdet import Detector, PageReader, to_gray
    reader = PageReader(Recognizer(), Detector())
    for line in reader.read([to_gray(open("receipt.jpg", "rb").read())])[0]:
        print(line.box, line.text, line.confidence)
"""

from crnn.preprocess import to_gray
from textdet.detector import Detector
from textdet.page import Line, PageReader
from textdet.specs import DEFAULT_DETECTOR, DETECTOR_SPECS, DetectionConfig

__all__ = ["DEFAULT_DETECTOR", "DETECTOR_SPECS", "DetectionConfig", "Detector", "Line", "PageReader", "to_gray"]
