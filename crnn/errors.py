"""The project's exception types.

Every problem with an input the caller supplied (an image, an allowlist, a
weights file) raises a subclass of :class:`CrnnError`, so callers (the CLI, the
gRPC service) can tell "your input" apart from a bug with one ``except``.
"""

from __future__ import annotations


class CrnnError(Exception):
    """Base class of all errors this package raises on purpose."""


class InvalidImageError(CrnnError):
    """An image cannot be recognised: undecodable, empty, too big or absurdly shaped.

    ``reason`` is a short machine-friendly tag (``"undecodable"``, ``"empty"``,
    ``"too_many_pixels"``, ``"aspect_ratio"``, ``"bad_array"``); the message says
    the same thing for people.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidAllowlistError(CrnnError):
    """An allowlist contains characters outside the model's alphabet (or is empty)."""


class InvalidConstraintError(CrnnError):
    """A pattern or lexicon cannot constrain this model: bad syntax, too large, or nothing it can write."""


class WeightsError(CrnnError):
    """A weights file or checkpoint is missing, corrupt, or fails its checksum."""


class UnknownModelError(CrnnError):
    """A model name is neither registered nor a checkpoint file we can find."""
