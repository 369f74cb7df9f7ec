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


#: Letter case a model can be told to write (it then reads letters case-insensitively).
CASES = ("upper", "lower")


@dataclass(frozen=True)
class Charset:
    """A CTC alphabet: class 0 is the blank, class ``i`` (1-based) is ``alphabet[i-1]``.

    With ``case`` ("upper" or "lower") letters are read case-insensitively and
    written in that case: each letter's two classes are merged into the one of
    that case (their probabilities add up), the way a domain whose labels are
    all capitals (receipts, plates) is read and trained.
    """

    alphabet: str
    case: str | None = None

    def __post_init__(self) -> None:
        if not self.alphabet:
            raise ValueError("an alphabet needs at least one character")
        if len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError("alphabet has repeated characters")
        if self.case is not None and self.case not in CASES:
            raise ValueError(f"case must be one of {CASES} or None, not {self.case!r}")

    @cached_property
    def case_fold(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(kept, merged)`` class indices: ``merged[i]`` folds into ``kept[i]``; None without ``case``."""
        if self.case is None:
            return None
        pairs = [
            (self._index[self._cased(ch)], self._index[ch]) for ch in self.alphabet
            if self._cased(ch) != ch and self._cased(ch) in self._index
        ]
        if not pairs:
            return None
        kept, merged = zip(*pairs)
        return np.array(kept), np.array(merged)

    @cached_property
    def fold_rounds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``case_fold`` in rounds whose kept classes are all different: a large alphabet folds several
        letters into one (PP-OCRv6 small: ``i`` and dotless ``ı`` into ``I``), and one vectorised update per
        round adds every merged class to its twin, where a single one would keep only the last of each group."""
        if self.case_fold is None:
            return []
        rounds: list[tuple[list[int], list[int]]] = []
        seen: dict[int, int] = {}
        for kept, merged in zip(*self.case_fold):
            r = seen.get(int(kept), 0)
            seen[int(kept)] = r + 1
            if r == len(rounds):
                rounds.append(([], []))
            rounds[r][0].append(int(kept))
            rounds[r][1].append(int(merged))
        return [(np.array(k), np.array(m)) for k, m in rounds]

    def _cased(self, ch: str) -> str:
        folded = ch.upper() if self.case == "upper" else ch.lower() if self.case == "lower" else ch
        return folded if len(folded) == 1 else ch

    def in_case(self, text: str) -> str:
        """``text`` with letters in the charset's case (where the alphabet has that letter)."""
        return "".join(self._cased(ch) if self._cased(ch) in self._index else ch for ch in text)

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
        turns into "allow nothing". With ``case``, letters allow their class
        in that case (``"abc"`` allows ``ABC`` for an upper-case model).
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
        for ch in self.in_case(allowlist):
            mask[self._index[ch]] = True
        return mask
