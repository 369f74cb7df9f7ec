"""Constrained CTC decoding: the most probable path whose text matches a pattern or a lexicon word.

Greedy decoding takes the best class in every frame. When the caller knows
what the text looks like, the decoder instead searches the CTC lattice for
the best *path* (one class per frame) whose collapsed text is accepted:

* a **pattern** (a regular expression over the whole reading) is compiled to
  a deterministic automaton by ``interegular`` and searched exactly with a
  Viterbi pass over the product of the CTC frames and the automaton's
  states (state = automaton state x the class of the previous frame, which
  CTC needs to tell a repeated frame from a repeated character);
* a **lexicon** (a list of words) is held as a trie and scored level by
  level: every word of the same length is extended frame by frame in one
  vectorised pass, so shared prefixes are scored once. The best word is then
  aligned with the pattern search to place its characters.

Scores are log-probabilities of single paths; the greedy path is the best
path of all, so a constrained path is never more probable than it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from crnn.charset import Charset
from crnn.decode import Result, path_result
from crnn.errors import InvalidConstraintError

#: Largest automaton a pattern may compile to, and largest lexicon (words; characters per word).
MAX_PATTERN_STATES = 512
#: Longest pattern, largest counted repetition (x{n}) and most automaton states built on the way to the
#: reduced one: without these, a short pattern such as ``(a|b)*a(a|b){16}`` or ``a{99999}`` keeps the compiler
#: busy for minutes (subset construction is exponential in the worst case).
MAX_PATTERN_LENGTH = 1000
MAX_REPEAT = 1000
MAX_BUILD_STATES = 2 * MAX_PATTERN_STATES
MAX_LEXICON_WORDS = 100_000
MAX_WORD_LENGTH = 64
_NEG = -1e30


class _TooManyStates(Exception):
    """An automaton under construction passed its state budget."""


def _check_pattern_size(pattern: str) -> None:
    """Refuse, before any automaton work, a pattern too long or with a counted repetition over MAX_REPEAT."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidConstraintError(f"pattern of {len(pattern)} characters (at most {MAX_PATTERN_LENGTH})")
    for match in re.finditer(r"(?<!\\)\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}", pattern):
        bounds = [int(b) for b in match.groups() if b]
        if bounds and max(bounds) > MAX_REPEAT:
            raise InvalidConstraintError(f"pattern repeats {match.group(0)}: counts above {MAX_REPEAT} are refused")


_BUILD_LOCK = threading.Lock()


@contextmanager
def _bounded_construction(max_states: int):
    """While active, every automaton interegular builds raises ``_TooManyStates`` past ``max_states`` states.

    interegular builds each automaton by crawling it from its initial state
    (``interegular.fsm.crawl``); the wrapper counts the states it visits.
    A lock keeps the swap to one compilation at a time.
    """
    import interegular.fsm as fsm_module

    with _BUILD_LOCK:
        crawl = fsm_module.crawl

        def bounded(alphabet, initial, final, follow):
            seen = 0

            def counting_final(state):
                nonlocal seen
                seen += 1
                if seen > max_states:
                    raise _TooManyStates
                return final(state)

            return crawl(alphabet, initial, counting_final, follow)

        fsm_module.crawl = bounded
        try:
            yield
        finally:
            fsm_module.crawl = crawl


@dataclass(frozen=True)
class Automaton:
    """A deterministic automaton over a model's classes: ``next[state, class]`` (-1: no transition)."""

    next: np.ndarray  # (S, C) int32; column 0 (the blank) is always -1
    initial: int
    final: np.ndarray  # (S,) bool

    @classmethod
    def from_pattern(cls, pattern: str, charset: Charset, ignore_case: bool = False) -> Automaton:
        """Compile a regular expression (the whole reading must match it) for ``charset``'s classes.

        With ``ignore_case`` a letter's class may take any transition of its
        other case too (``[A-Z]`` then also accepts ``a``-``z``). Raises
        ``InvalidConstraintError`` for a pattern that does not parse, is too
        large, or that no text the model can write matches.
        """
        import interegular
        from interegular.fsm import anything_else

        _check_pattern_size(pattern)
        try:
            with _bounded_construction(MAX_BUILD_STATES):
                fsm = interegular.parse_pattern(pattern).to_fsm().reduce()
        except _TooManyStates:
            raise InvalidConstraintError(
                f"pattern {pattern!r} is too large: its automaton passes {MAX_BUILD_STATES} states while being "
                f"built (at most {MAX_PATTERN_STATES} once reduced)"
            ) from None
        except Exception as exc:  # interegular raises several types for bad or unsupported syntax
            raise InvalidConstraintError(f"pattern {pattern!r} cannot be compiled: {exc}") from exc
        states = sorted(fsm.states, key=lambda s: (s != fsm.initial, s))
        if len(states) > MAX_PATTERN_STATES:
            raise InvalidConstraintError(f"pattern {pattern!r} needs {len(states)} states (at most "
                                         f"{MAX_PATTERN_STATES})")
        index = {s: i for i, s in enumerate(states)}
        table = np.full((len(states), charset.num_classes), -1, np.int32)
        def symbol(ch: str):
            return fsm.alphabet[ch] if ch in fsm.alphabet else fsm.alphabet.get(anything_else)

        for c in range(1, charset.num_classes):
            ch = charset.char(c)
            symbols = [symbol(ch)] + ([symbol(ch.swapcase())] if ignore_case and ch.swapcase() != ch else [])
            for s in states:
                targets = [fsm.map.get(s, {}).get(sym) for sym in symbols if sym is not None]
                target = next((t for t in targets if t is not None), None)
                if target is not None:
                    table[index[s], c] = index[target]
        automaton = cls(table, 0, np.array([s in fsm.finals for s in states]))
        if not automaton.can_accept():
            raise InvalidConstraintError(
                f"pattern {pattern!r} matches no text this model can write (its alphabet: {charset.alphabet!r})"
            )
        return automaton

    @classmethod
    def from_word(cls, classes: Sequence[int], num_classes: int) -> Automaton:
        """The automaton accepting exactly one sequence of classes."""
        table = np.full((len(classes) + 1, num_classes), -1, np.int32)
        for i, c in enumerate(classes):
            table[i, c] = i + 1
        final = np.zeros(len(classes) + 1, bool)
        final[-1] = True
        return cls(table, 0, final)

    def accepts(self, classes: Sequence[int]) -> bool:
        """Whether the automaton accepts this sequence of classes."""
        state = self.initial
        for c in classes:
            state = int(self.next[state, c])
            if state < 0:
                return False
        return bool(self.final[state])

    def can_accept(self) -> bool:
        """Whether some sequence of classes leads from the initial state to a final one."""
        seen, frontier = {self.initial}, [self.initial]
        while frontier:
            state = frontier.pop()
            if self.final[state]:
                return True
            for target in set(self.next[state][self.next[state] >= 0].tolist()) - seen:
                seen.add(target)
                frontier.append(target)
        return False


def best_path(log_probs: np.ndarray, automaton: Automaton) -> tuple[np.ndarray, float] | None:
    """The most probable frame labelling ``(T,)`` whose collapsed text the automaton accepts, and its log-prob.

    Exact (Viterbi over automaton state x previous frame's class). None when
    no path of ``T`` frames is accepted (e.g. more characters than frames).
    """
    frames, classes = log_probs.shape
    n_states = automaton.next.shape[0]
    score = np.full((n_states, classes), _NEG)
    # Before the first frame: at the initial state, "previous class" = blank (a first character always emits).
    score[automaton.initial, 0] = 0.0
    moves = [(q, np.flatnonzero(automaton.next[q] >= 0)) for q in range(n_states)]
    moves = [(q, labels, automaton.next[q, labels]) for q, labels in moves if len(labels)]
    back_state = np.zeros((frames, n_states, classes), np.int32)
    back_class = np.zeros((frames, n_states, classes), np.int32)
    rows = np.arange(n_states)[:, None]
    for t in range(frames):
        lp = log_probs[t]
        new = np.full_like(score, _NEG)
        best_class = score.argmax(1)
        best = score[np.arange(n_states), best_class]
        # A blank frame: stay in the state, from any previous class.
        new[:, 0] = best + lp[0]
        back_state[t, :, 0] = np.arange(n_states)
        back_class[t, :, 0] = best_class
        # The same class again: a repeated frame, no new character.
        new[:, 1:] = score[:, 1:] + lp[1:]
        back_state[t, :, 1:] = rows
        back_class[t, :, 1:] = np.arange(1, classes)[None, :]
        # A new character l from state q (the previous class must differ from l, or it would be a repeat).
        second = score.copy()
        second[np.arange(n_states), best_class] = _NEG
        second_class = second.argmax(1)
        second_best = second[np.arange(n_states), second_class]
        for q, labels, targets in moves:
            if best[q] <= _NEG / 2:
                continue
            same = best_class[q] == labels
            source = np.where(same, second_class[q], best_class[q])
            cand = np.where(same, second_best[q], best[q]) + lp[labels]
            better = cand > new[targets, labels]
            if better.any():
                tgt, lab = targets[better], labels[better]
                new[tgt, lab] = cand[better]
                back_state[t, tgt, lab] = q
                back_class[t, tgt, lab] = source[better]
        score = new
    finals = np.flatnonzero(automaton.final)
    end = score[finals]
    flat = int(end.argmax())
    total = float(end.flat[flat])
    if total <= _NEG / 2:
        return None
    state, label = int(finals[flat // classes]), flat % classes
    path = np.zeros(frames, np.int64)
    for t in range(frames - 1, -1, -1):
        path[t] = label
        state, label = int(back_state[t, state, label]), int(back_class[t, state, label])
    return path, total


class Lexicon:
    """Words as a trie over a model's classes, scored against a line's frames all at once.

    ``ignore_case`` compares letters case-insensitively; the word returned is
    then spelt as the lexicon spells it.
    """

    def __init__(self, words: Iterable[str], charset: Charset, ignore_case: bool = False) -> None:
        unique = sorted({w.strip() for w in words if w.strip()})
        if not unique:
            raise InvalidConstraintError("the lexicon is empty")
        if len(unique) > MAX_LEXICON_WORDS:
            raise InvalidConstraintError(f"the lexicon has {len(unique)} words (at most {MAX_LEXICON_WORDS})")
        self.charset = charset
        self.ignore_case = ignore_case
        self.words: list[str] = []
        self.classes: list[list[int]] = []
        #: Word index by spelling (lower-case letters with ``ignore_case``).
        self.index: dict[str, int] = {}
        unknown: set[str] = set()
        for word in unique:
            if len(word) > MAX_WORD_LENGTH:
                raise InvalidConstraintError(f"lexicon word {word[:20]!r}... is longer than {MAX_WORD_LENGTH}")
            spelt = charset.in_case(word.lower() if self.folds_case else word)
            missing = charset.unknown_chars(spelt)
            if missing:
                unknown |= set(missing)
                continue
            self.index.setdefault(spelt, len(self.words))
            self.words.append(word)
            self.classes.append(charset.encode(spelt))
        if not self.words:
            raise InvalidConstraintError(f"no lexicon word can be written with this model's alphabet (unknown "
                                         f"characters: {''.join(sorted(unknown))!r})")
        # Trie, level by level: node ids per level, each node's parent (previous level) and class.
        self._levels: list[tuple[np.ndarray, np.ndarray]] = []  # (parent index, class) per node of the level
        self._ends: list[list[tuple[int, int]]] = []  # per level: (node index, word index)
        nodes: list[dict[tuple[int, int], int]] = []
        for w, classes in enumerate(self.classes):
            parent = 0
            for depth, c in enumerate(classes):
                if depth == len(nodes):
                    nodes.append({})
                parent = nodes[depth].setdefault((parent, c), len(nodes[depth]))
            while len(self._ends) < len(classes):
                self._ends.append([])
            self._ends[len(classes) - 1].append((parent, w))
        for level in nodes:
            keys = sorted(level, key=level.__getitem__)
            self._levels.append((np.array([k[0] for k in keys]), np.array([k[1] for k in keys])))

    def __len__(self) -> int:
        return len(self.words)

    def lookup(self, text: str) -> int | None:
        """The index of the word spelt ``text`` (letter case ignored with ``ignore_case``), or None."""
        return self.index.get(self.charset.in_case(text.lower() if self.folds_case else text))

    @property
    def folds_case(self) -> bool:
        """True when letters must be scored by the better of their two case classes (``ignore_case``)."""
        return self.ignore_case and not self.charset.case

    def best(self, log_probs: np.ndarray) -> tuple[int, float] | None:
        """Index of the lexicon word with the most probable single path through ``log_probs``, and its log-prob.

        With ``folds_case``, pass log-probs already raised to the better case
        of each letter (lower-case classes; see ``decode``). None when no word
        fits in the frames.
        """
        lp = log_probs
        frames = lp.shape[0]
        blank = lp[:, 0]
        # Level -1 (the empty prefix): "ended in a blank" at every frame (only blanks so far), "ended in a
        # character" impossible. Index 0 of the time axis is "before the first frame".
        prev_blank = np.concatenate([[0.0], np.cumsum(blank)])[None, :]
        prev_char = np.full((1, frames + 1), _NEG)
        prev_class = np.array([-1])
        best_word, best_score = None, _NEG
        for depth, (parent, cls) in enumerate(self._levels):
            emit = lp[:, cls].T  # (N, T)
            pb, pc = prev_blank[parent], prev_char[parent]
            distinct = prev_class[parent] != cls
            char = np.full((len(cls), frames + 1), _NEG)
            ended = np.full((len(cls), frames + 1), _NEG)
            for t in range(1, frames + 1):
                enter = np.maximum(pb[:, t - 1], np.where(distinct, pc[:, t - 1], _NEG))
                char[:, t] = np.maximum(char[:, t - 1], enter) + emit[:, t - 1]
                ended[:, t] = np.maximum(ended[:, t - 1], char[:, t - 1]) + blank[t - 1]
            if depth < len(self._ends):
                for node, w in self._ends[depth]:
                    total = max(char[node, frames], ended[node, frames])
                    if total > best_score:
                        best_word, best_score = w, float(total)
            prev_blank, prev_char, prev_class = ended, char, cls
        return None if best_word is None else (best_word, best_score)


def _best_case(log_probs: np.ndarray, charset: Charset) -> np.ndarray:
    """Per frame, each letter's lower-case class raised to the better of its two cases."""
    out = log_probs.copy()
    for lower, upper in Charset(charset.alphabet, "lower").fold_rounds:
        out[:, lower] = np.maximum(out[:, lower], log_probs[:, upper])
    return out


def _add(beams: dict[tuple[int, ...], list[float]], prefix: tuple[int, ...], slot: int, value: float) -> None:
    entry = beams.setdefault(prefix, [_NEG, _NEG])
    entry[slot] = np.logaddexp(entry[slot], value)


def beam_search(log_probs: np.ndarray, width: int, prune: float = -9.0) -> list[int]:
    """CTC prefix beam search: the classes of the most probable text, summing over its paths.

    Keeps ``width`` prefixes per frame and, per frame, only classes whose
    log-probability is above ``prune`` (plus the frame's best).
    """
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, _NEG)}  # prefix -> (ends in blank, in char)
    for lp in log_probs:
        keep = np.flatnonzero(lp > min(prune, lp.max()))
        grown: dict[tuple[int, ...], list[float]] = {}
        for prefix, (p_blank, p_char) in beams.items():
            total = np.logaddexp(p_blank, p_char)
            for c in keep.tolist():
                if c == 0:
                    _add(grown, prefix, 0, total + lp[0])
                elif prefix and prefix[-1] == c:
                    _add(grown, prefix, 1, p_char + lp[c])  # the same character, one more frame
                    _add(grown, prefix + (c,), 1, p_blank + lp[c])  # the character again, after a blank
                else:
                    _add(grown, prefix + (c,), 1, total + lp[c])
        ranked = sorted(grown.items(), key=lambda kv: -np.logaddexp(*kv[1]))[:width]
        beams = {prefix: (v[0], v[1]) for prefix, v in ranked}
    return list(max(beams.items(), key=lambda kv: np.logaddexp(*kv[1]))[0])


@dataclass(frozen=True)
class Constraint:
    """What a reading must be (a pattern or a lexicon word), or how to search (beam width), for one charset."""

    automaton: Automaton | None = None
    lexicon: Lexicon | None = None
    beam_width: int = 0

    @classmethod
    def build(
        cls, charset: Charset, pattern: str | None = None, lexicon: Sequence[str] | None = None,
        ignore_case: bool = False, beam_width: int = 0,
    ) -> Constraint | None:
        """The constraint for these options (None when there is none); raises ``InvalidConstraintError``."""
        if pattern and lexicon:
            raise InvalidConstraintError("give a pattern or a lexicon, not both")
        if not 0 <= beam_width <= 64:
            raise InvalidConstraintError(f"beam width must be between 0 and 64, got {beam_width}")
        if not (pattern or lexicon or beam_width > 1):
            return None
        return cls(Automaton.from_pattern(pattern, charset, ignore_case) if pattern else None,
                   Lexicon(lexicon, charset, ignore_case) if lexicon else None, beam_width)

    def decode(self, probs: np.ndarray, charset: Charset, scale_x: float = 1.0, image_width: int | None = None
               ) -> Result:
        """The constrained reading of one line's probabilities ``(T, C)``; ``unconstrained`` holds the greedy one.

        A line that no accepted text fits reads as empty with confidence 0.
        """
        greedy = path_result(probs.argmax(axis=1), probs, charset, scale_x, image_width)
        log_probs = np.log(np.maximum(probs, 1e-30))
        word: str | None = None
        if self.automaton is not None:
            if self.automaton.accepts(charset.encode(greedy.text)):
                return replace(greedy, unconstrained=greedy)  # the best path of all already matches
            found = best_path(log_probs, self.automaton)
            path = None if found is None else found[0]
        elif self.lexicon is not None:
            known = self.lexicon.lookup(greedy.text)
            if known is not None:
                return replace(greedy, text=self.lexicon.words[known], unconstrained=greedy)
            if self.lexicon.folds_case:  # each letter scores, and is placed, by the better of its two cases
                log_probs = _best_case(log_probs, charset)
                probs = np.exp(log_probs)
            best = self.lexicon.best(log_probs)
            path = None if best is None else _align(log_probs, self.lexicon.classes[best[0]])
            word = None if best is None else self.lexicon.words[best[0]]
        else:
            path = _align(log_probs, beam_search(log_probs, self.beam_width))
        if path is None:
            return Result("", 0.0, [], unconstrained=greedy)
        result = path_result(path, probs, charset, scale_x, image_width)
        return replace(result, text=word if word is not None else result.text, unconstrained=greedy)


def _align(log_probs: np.ndarray, classes: Sequence[int]) -> np.ndarray | None:
    """The best frame labelling that reads exactly ``classes`` (to place each character)."""
    found = best_path(log_probs, Automaton.from_word(classes, log_probs.shape[1]))
    return None if found is None else found[0]
