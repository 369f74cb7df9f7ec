"""Constrained decoding against brute force on small hand-made lattices."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from crnn.charset import Charset
from crnn.constrained import Automaton, Constraint, Lexicon, _check_pattern_size, beam_search, best_path
from crnn.errors import InvalidConstraintError

CHARSET = Charset("ab1")


def _lattice(seed: int, frames: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(CHARSET.num_classes) * 0.7, size=frames)
    return np.log(probs)


def _collapse(path: tuple[int, ...]) -> str:
    out, last = [], 0
    for c in path:
        if c != 0 and c != last:
            out.append(CHARSET.char(c))
        last = c
    return "".join(out)


def _paths(log_probs: np.ndarray):
    for path in itertools.product(range(CHARSET.num_classes), repeat=len(log_probs)):
        yield path, _collapse(path), float(log_probs[np.arange(len(path)), path].sum())


@pytest.mark.parametrize("pattern", ["a+", "[ab]1", "1?b*a", "ab|ba", "a1a"])
@pytest.mark.parametrize("seed", range(6))
def test_pattern_search_finds_the_best_matching_path(pattern: str, seed: int) -> None:
    log_probs = _lattice(seed)
    found = best_path(log_probs, Automaton.from_pattern(pattern, CHARSET))
    best = max(((score, path) for path, text, score in _paths(log_probs) if re.fullmatch(pattern, text)),
               default=None)
    assert found is not None and best is not None
    path, score = found
    assert score == pytest.approx(best[0])
    assert re.fullmatch(pattern, _collapse(tuple(path)))


@pytest.mark.parametrize("seed", range(6))
def test_lexicon_finds_the_word_with_the_best_path(seed: int) -> None:
    words = ["a", "ab", "aa", "b1", "1ba", "abab", "bb"]
    log_probs = _lattice(seed)
    lexicon = Lexicon(words, CHARSET)
    index, score = lexicon.best(log_probs)  # case-sensitive: raw log-probs
    best = {}
    for _, text, s in _paths(log_probs):
        best[text] = max(best.get(text, -np.inf), s)
    expected = max((w for w in words if w in best), key=best.__getitem__)
    assert lexicon.words[index] == expected and score == pytest.approx(best[expected])


@pytest.mark.parametrize("seed", range(4))
def test_wide_beam_search_finds_the_most_probable_text(seed: int) -> None:
    log_probs = _lattice(seed)
    total: dict[str, float] = {}
    for _, text, s in _paths(log_probs):
        total[text] = np.logaddexp(total.get(text, -np.inf), s)
    found = "".join(CHARSET.char(c) for c in beam_search(log_probs, width=1000, prune=-np.inf))
    assert total[found] == pytest.approx(max(total.values()))


def test_no_path_fits_when_the_text_is_longer_than_the_frames() -> None:
    assert best_path(_lattice(0, frames=2), Automaton.from_pattern("a1a", CHARSET)) is None


def test_constrained_reading_keeps_the_greedy_one_beside_it() -> None:
    probs = np.full((6, CHARSET.num_classes), 0.01)
    for t, c in enumerate([1, 0, 3, 3, 0, 2]):  # greedy reads "a1b"
        probs[t, c] = 0.97
    probs[2, 2] = 0.02  # "b" is the runner-up where "1" was read
    probs /= probs.sum(1, keepdims=True)
    constraint = Constraint.build(CHARSET, pattern="[ab]+")
    result = constraint.decode(probs, CHARSET)
    assert result.text == "abb" and result.unconstrained.text == "a1b"
    assert result.confidence < result.unconstrained.confidence
    same = Constraint.build(CHARSET, pattern="a1b").decode(probs, CHARSET)
    assert same.text == "a1b" and same.confidence == same.unconstrained.confidence
    word = Constraint.build(CHARSET, lexicon=["bb", "abb", "b1"]).decode(probs, CHARSET)
    assert word.text == "abb" and len(word.chars) == 3


def test_bad_constraints_are_clear_errors() -> None:
    with pytest.raises(InvalidConstraintError, match="cannot be compiled"):
        Constraint.build(CHARSET, pattern="a(")
    with pytest.raises(InvalidConstraintError, match="matches no text"):
        Constraint.build(CHARSET, pattern="[xyz]+")
    with pytest.raises(InvalidConstraintError, match="no lexicon word"):
        Constraint.build(CHARSET, lexicon=["xyz"])
    with pytest.raises(InvalidConstraintError, match="not both"):
        Constraint.build(CHARSET, pattern="a", lexicon=["a"])
    assert Constraint.build(CHARSET) is None


@pytest.mark.parametrize("pattern", [
    "a{99999}",  # a counted repetition far past any reading
    "(a|b)*a(a|b){16}",  # exponential subset construction
    "((a{1000}){1000}){1000}",  # nested counts, each under the limit
    "(?:[ab]+1*)+" * 40,
    "a" * 1001,  # too long
])
def test_patterns_that_would_keep_the_compiler_busy_are_refused_quickly(pattern: str) -> None:
    with pytest.raises(InvalidConstraintError, match="too large|refused|at most"):
        Automaton.from_pattern(pattern, CHARSET)  # each took minutes (or never ended) before the limits


def test_limits_leave_ordinary_patterns_alone() -> None:
    assert Automaton.from_pattern("(a|b)*a(a|b){7}", CHARSET).next.shape[0] == 256
    assert Automaton.from_pattern("a{500}", CHARSET).accepts([1] * 500)
    _check_pattern_size(r"a\{2000\}")  # escaped braces are characters, not a count


def test_case_insensitive_lexicon_scores_letters_by_their_better_case() -> None:
    charset = Charset("abAB")
    probs = np.full((3, charset.num_classes), 0.01)
    probs[0, charset.encode("A")[0]] = 0.9
    probs[1, 0] = 0.9
    probs[2, charset.encode("A")[0]] = 0.5
    probs[2, charset.encode("B")[0]] = 0.45  # greedy reads "AA", which is no word
    probs /= probs.sum(1, keepdims=True)
    result = Constraint.build(charset, lexicon=["ab", "bb"], ignore_case=True).decode(probs, charset)
    assert result.text == "ab" and result.unconstrained.text == "AA"
    assert result.confidence == pytest.approx(probs[0, 3] * probs[2, 4], rel=1e-6)  # the upper-case classes


def test_case_insensitive_pattern_lets_a_letter_take_either_case() -> None:
    charset = Charset("abAB")
    probs = np.full((3, charset.num_classes), 0.01)
    probs[0, charset.encode("a")[0]] = 0.9
    probs[1, 0] = 0.9
    probs[2, charset.encode("b")[0]] = 0.9  # greedy reads "ab"
    probs /= probs.sum(1, keepdims=True)
    assert Constraint.build(charset, pattern="[A-Z]+").decode(probs, charset).text.isupper()
    folded = Constraint.build(charset, pattern="[A-Z]+", ignore_case=True).decode(probs, charset)
    assert folded.text == "ab" and folded.confidence == folded.unconstrained.confidence
