"""Word error rate, without dependencies (used by recipes, benchmarks and
tests on machines where jiwer is not installed)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["character_errors", "word_error_rate", "word_errors"]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words) between two
    space-separated word strings (Levenshtein distance over words)."""
    ref = reference.split()
    return _edit_distance(ref, hypothesis.split()), len(ref)


def character_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference characters) between two strings whose runs of
    whitespace count as one space (Levenshtein distance over characters)."""
    ref, hyp = " ".join(reference.split()), " ".join(hypothesis.split())
    return _edit_distance(ref, hyp), len(ref)


def _edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    previous = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, other in enumerate(hyp, 1):
            current[j] = min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other)
            )
        previous = current
    return previous[-1]


def word_error_rate(pairs: Iterable[tuple[str, str]]) -> float:
    """Corpus WER of (reference, hypothesis) pairs, in percent."""
    errors = words = 0
    for reference, hypothesis in pairs:
        e, n = word_errors(reference, hypothesis)
        errors += e
        words += n
    return 100.0 * errors / max(words, 1)
