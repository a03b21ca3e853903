"""Typo tolerance: find vocabulary words within edit distance 1-2 of a word, fast.

A deletion index (the SymSpell idea) keeps a lookup to a few dictionary hits
instead of comparing against every vocabulary word, so a typo costs microseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Longer "words" are not typos of anything we know, and their deletion sets explode.
MAX_WORD = 20


def allowed_distance(word: str) -> int:
    """Short words tolerate fewer typos: "cat" must not become "hat"."""
    if len(word) < 4 or len(word) > MAX_WORD:
        return 0
    return 1 if len(word) < 7 else 2


def osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (a swap of neighbours costs 1), capped at limit + 1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, 1):
            cost = 0 if char_a == char_b else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def _deletes(word: str, depth: int) -> set[str]:
    found = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


class FuzzyIndex:
    """Vocabulary words by their deletion variants.

    ``priority`` 0 marks attribute words, which win ties and may be reached from any
    short typo; other (grammar) words are only reached from short words by a swap.
    """

    def __init__(self, words: Iterable[str], priority: Mapping[str, int] | None = None) -> None:
        self._priority = dict(priority or {})
        self._index: dict[str, list[str]] = {}
        for word in sorted(set(words)):
            for variant in _deletes(word, 2 if len(word) >= 5 else 1):
                self._index.setdefault(variant, []).append(word)

    def best(self, word: str) -> str | None:
        """The closest vocabulary word within the allowed distance, or None."""
        limit = allowed_distance(word)
        if limit == 0:
            return None
        candidates: set[str] = set()
        for variant in _deletes(word, limit):
            candidates.update(self._index.get(variant, ()))
        scored = []
        for candidate in candidates:
            if len(candidate) < 4:  # "fold" is not a typo of "old"
                continue
            # People rarely mistype the first letter; requiring it keeps "thats" from "hats".
            if candidate[0] != word[0] and candidate[:2] != word[1::-1]:
                continue
            priority = self._priority.get(candidate, 1)
            if priority and len(word) < 5 and sorted(word) != sorted(candidate):
                continue  # short grammar words: swaps only ("mroe"), so "glow" is not "grow"
            distance = osa_distance(word, candidate, limit)
            if distance <= limit:
                scored.append((distance, priority, candidate))
        return min(scored)[2] if scored else None
