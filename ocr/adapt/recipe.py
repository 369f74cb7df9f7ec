"""The adapt recipe's switches that users do not set: the shipped values, and what the study varies.

``ocr adapt``'s options (``ocr.config.AdaptConfig``) say what to adapt on
and within what limits; a ``Recipe`` says how. Only
``scripts/studies/adapt_study.py`` builds another one, to measure what each
switch is worth (docs/studies/adapt.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """How ``run_adapt`` fine-tunes and chooses; the defaults are the shipped recipe."""

    #: Install a moving average of the weights over about this share of each fit's steps (0: the last weights).
    #: Chosen among 0, 0.2, 0.5 and 1 on english_g2's split 0 (docs/studies/adapt.md, "Averaging the weights").
    average_share: float = 0.5
    #: The final fit continues from the (last) selection fit's weights instead of the pretrained ones.
    warm_start: bool = True
    #: The options tried include the pretrained model as a gated fallback (False: the network alone only).
    gate: bool = True


SHIPPED = Recipe()
