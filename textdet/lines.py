"""Line-level clean-ups for page reading: darkening faint ink, and spacing the recogniser gets wrong.

Both are measured on scanned receipts (docs/studies/detection.md) and applied only to
lines found by the detector, never to the cropped-line path.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from crnn.decode import Result
from crnn.preprocess import stretch_contrast

#: Gamma applied to the stretched line: 2 turns a 50% grey stroke into 25%, so faint thermal print reads as ink.
INK_GAMMA = 2.0

# Spaces the recogniser puts where print has none: before a full stop or comma ("BALAKONG ," "RECEIPT ."),
# and inside numbers ("33, 92", "8 . 02"). A comma or stop followed by a letter is left alone.
_SPACE_BEFORE_STOP = re.compile(r"(?<=[0-9A-Za-z)\]])( +)(?=[.,](?:\s|$|[0-9]))")
_SPACE_IN_NUMBER = re.compile(r"(?<=[0-9])( *)[.,]( +)(?=[0-9])")
_SPACE_RUN = re.compile(r"(?<= )( +)")


def darken_ink(gray: np.ndarray) -> np.ndarray:
    """Stretch a line's contrast fully, then push mid-greys towards the ink (dark ink; light ink is mirrored)."""
    if np.median(gray) < 128:  # light ink on a dark background: do the same to the negative
        return 255 - darken_ink(255 - gray)
    stretched = stretch_contrast(gray, target=1.0).astype(np.float32) / 255.0
    return (stretched**INK_GAMMA * 255.0).round().astype(np.uint8)


def spurious_spaces(text: str) -> list[int]:
    """Indices of spaces in ``text`` that should go (see the module's rules), in increasing order."""
    drop: set[int] = set()
    for pattern in (_SPACE_BEFORE_STOP, _SPACE_IN_NUMBER, _SPACE_RUN):
        for match in pattern.finditer(text):
            for group in range(1, (pattern.groups or 0) + 1):
                drop.update(range(*match.span(group)))
    stripped = text.strip(" ")
    start = len(text) - len(text.lstrip(" "))
    drop.update(range(start))
    drop.update(range(start + len(stripped), len(text)))
    return sorted(drop)


def tidy_spacing(result: Result) -> Result:
    """The reading without spurious spaces; its characters (when given one per letter) lose them too."""
    drop = spurious_spaces(result.text)
    if not drop:
        return result
    keep = [i for i in range(len(result.text)) if i not in set(drop)]
    text = "".join(result.text[i] for i in keep)
    chars = result.chars
    if len(chars) == len(result.text):
        chars = [chars[i] for i in keep]
    return replace(result, text=text, chars=chars)
