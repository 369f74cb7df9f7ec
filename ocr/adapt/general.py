"""Rendered general text: training lines for distillation and a hard probe for estimating forgetting."""

from __future__ import annotations

import random

import albumentations as A
import cv2
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

#: The forgetting probe's vocabulary (signs, shop fronts, everyday words, as in scene text), kept apart from
#: ``_WORDS``, which training may replay.
_PROBE_WORDS = (
    "welcome center central public private service services centre company limited group global power "
    "energy motors auto repair tyres fashion beauty salon studio design food pizza burger grill kitchen "
    "cafe bar pub club sports fitness dental clinic hospital medical health care pet shop store supermarket "
    "fresh organic farm fruit bread cake chocolate cream milk tea juice wine beer water ice hot cold new old "
    "big small good best free only stop slow look left right ahead danger warning caution entrance toilet "
    "ladies gents push pull no yes way out in up down floor level car bus taxi train airport metro line "
    "gate platform ticket office information national royal united state union museum gallery theatre "
    "cinema park lake bridge tower castle church temple square plaza mall city council police fire "
    "emergency rescue post mail express delivery phone mobile computer digital electric electronics "
    "video games books newspaper times journal daily weekly magazine press media radio television garage "
    "petrol diesel gas oil station hardware paint wood metal glass plastic steel stone brick home house "
    "villa apartment rooms hotel motel inn lodge resort beach island sea ocean harbour port marina "
    "mountain valley forest garden flowers green blue red black white yellow orange purple golden silver "
    "star sun moon sky light dark night day morning evening spring summer autumn winter happy lucky "
    "super mega ultra max pro plus one two three four five six seven eight nine ten hundred thousand"
).split()
_PROBE_WORDS = [w for w in _PROBE_WORDS if w.lower() not in {x.lower() for x in _WORDS}]


#: Every character the probe's lines can contain (for choosing fonts).
PROBE_CHARS = "".join(sorted(set("".join(_PROBE_WORDS) + "".join(_PROBE_WORDS).upper() + "0123456789 .,!?:")))


def gate_general_set(fonts, count: int = 160) -> list[np.ndarray]:
    """Damaged rendered general words for fitting a domain gate: the training vocabulary, not the probe's."""
    return hard_general_set(fonts, count, seed=7, words=_WORDS)[0]


def general_lines(count: int, seed: int, words: list[str] | None = None) -> list[str]:
    """Words in varied case, sometimes with a number or punctuation."""
    rng = random.Random(seed)
    words = words or _WORDS
    lines = []
    for _ in range(count):
        word = rng.choice(words)
        form = rng.random()
        if form < 0.3:
            word = word.upper()
        elif form < 0.45:
            word = f"{word} {rng.randint(1, 999)}"
        elif form < 0.55:
            word = f"{word}{rng.choice('.,!?:')}"
        lines.append(word)
    return lines


def _probe_degradation(seed: int) -> A.Compose:
    """Strong, label-preserving damage that brings rendered words down to scene-text difficulty."""
    return A.Compose(
        [
            A.Affine(rotate=(-4, 4), shear={"x": (-15, 15), "y": (-3, 3)}, fit_output=True,
                     border_mode=cv2.BORDER_REPLICATE, p=0.7),
            A.Perspective(scale=(0.02, 0.06), fit_output=True, border_mode=cv2.BORDER_REPLICATE, p=0.5),
            A.RandomBrightnessContrast((-0.2, 0.2), (-0.4, 0.0), p=0.5),
            A.OneOf([A.GaussianBlur(sigma_limit=(0.8, 1.8)), A.MotionBlur(blur_limit=(3, 7))], p=0.4),
            A.Downscale(scale_range=(0.3, 0.5), p=0.3),
            A.GaussNoise(std_range=(0.02, 0.08), p=0.4),
            A.ImageCompression(quality_range=(20, 60), p=0.4),
        ],
        seed=seed,
    )


def hard_general_set(
    fonts, count: int = 300, seed: int = 2024, words: list[str] | None = None
) -> tuple[list[np.ndarray], list[str]]:
    """A fixed probe of ``count`` degraded rendered words in both polarities, with their labels.

    ``words`` defaults to the probe's own vocabulary; the domain gate's
    general examples use the training vocabulary, so the probe stays unseen.

    The pretrained model reads clean rendered text almost perfectly, so a clean
    probe cannot show forgetting; this one is damaged (low contrast, blur,
    downscaling, noise, JPEG, shear, perspective) until the pretrained model
    reads roughly as well as it reads real scene words, where drift shows.
    """
    rng = random.Random(seed)
    styles = [Style(ink, paper, 0.8, 4.0) for ink, paper in ((30.0, 220.0), (70.0, 190.0), (220.0, 40.0),
                                                               (190.0, 70.0), (50.0, 160.0))]
    renderer = Renderer(fonts, styles, seed)
    damage = _probe_degradation(seed)
    labels = []
    for line in general_lines(count, seed, words or _PROBE_WORDS):
        form = rng.random()
        labels.append(line.title() if form < 0.3 else line)
    images = []
    for text in labels:
        image = damage(image=renderer.render(text))["image"]
        images.append(image[:, :, 0] if image.ndim == 3 else image)
    return images, labels
