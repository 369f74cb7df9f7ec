"""A small rendered set of general text, for checking that adaptation did not make the model forget."""

from __future__ import annotations

import random

import numpy as np

from ocr.adapt.render import Renderer, Style

_WORDS = (
    "the of and to in is was for on that with as by at from his her are this which or be had not but "
    "have it they one all were there been has their more when who will would can an said into time "
    "people year city water house street market school family world number music river garden office "
    "Station Hotel Coffee Bank Parking Exit Open Closed Sale Police Pharmacy Restaurant Bakery Library "
    "London Paris Berlin Madrid Tokyo Delhi Sydney Chicago Boston Cairo Lagos Lima Oslo Rome Vienna "
    "January March October Monday Friday North South East West Main First Second Third Avenue Road"
).split()


def general_lines(count: int, seed: int) -> list[str]:
    """Words in varied case, sometimes with a number or punctuation."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        word = rng.choice(_WORDS)
        form = rng.random()
        if form < 0.3:
            word = word.upper()
        elif form < 0.45:
            word = f"{word} {rng.randint(1, 999)}"
        elif form < 0.55:
            word = f"{word}{rng.choice('.,!?:')}"
        lines.append(word)
    return lines


def rendered_general_set(renderer_fonts, count: int = 200, seed: int = 12345) -> tuple[list[np.ndarray], list[str]]:
    """``count`` dark-on-light rendered lines of general text and their labels (fixed by ``seed``)."""
    renderer = Renderer(renderer_fonts, [Style(25.0, 235.0, 0.4, 2.0)], seed)
    labels = general_lines(count, seed)
    return [renderer.render(text) for text in labels], labels
