"""Alphabets: mapping between CTC class indices and characters."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from crnn.errors import InvalidAllowlistError

#: The 96 characters of EasyOCR's ``english_g2`` model, in class order 1..96.
ENGLISH_G2_ALPHABET = (
    "0123456789"
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    " €"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "abcdefghijklmnopqrstuvwxyz"
)


@dataclass(frozen=True)
class Charset:
    """A CTC alphabet: class 0 is the blank, class ``i`` (1-based) is ``alphabet[i-1]``."""

    alphabet: str

    def __post_init__(self) -> None:
        if not self.alphabet:
            raise ValueError("an alphabet needs at least one character")
        if len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError("alphabet has repeated characters")

    @property
    def num_classes(self) -> int:
        """Number of output classes including the blank."""
        return len(self.alphabet) + 1

    @cached_property
    def _index(self) -> dict[str, int]:
        return {ch: i + 1 for i, ch in enumerate(self.alphabet)}

    def char(self, index: int) -> str:
        """The character of class ``index`` (``""`` for the blank)."""
        return "" if index == 0 else self.alphabet[index - 1]

    def encode(self, text: str) -> list[int]:
        """Class indices of ``text``; raises ``InvalidAllowlistError`` on unknown characters."""
        unknown = self.unknown_chars(text)
        if unknown:
            raise InvalidAllowlistError(f"characters not in the alphabet: {unknown!r}")
        return [self._index[ch] for ch in text]

    def unknown_chars(self, text: str) -> str:
        """The distinct characters of ``text`` that the alphabet lacks, in first-seen order."""
        return "".join(dict.fromkeys(ch for ch in text if ch not in self._index))

    def allow_mask(self, allowlist: str | None) -> np.ndarray | None:
        """Boolean mask over classes (blank always allowed), or ``None`` for "everything".

        Raises ``InvalidAllowlistError`` if ``allowlist`` is empty-after-dedup or
        holds characters the model cannot produce, so a typo never silently
        turns into "allow nothing".
        """
        if allowlist is None or allowlist == "":
            return None
        unknown = self.unknown_chars(allowlist)
        if unknown:
            raise InvalidAllowlistError(
                f"allowlist has characters outside the model's alphabet: {unknown!r}"
            )
        mask = np.zeros(self.num_classes, dtype=bool)
        mask[0] = True
        for ch in allowlist:
            mask[self._index[ch]] = True
        return mask
