"""Small helpers for the normalisation rules: a rule is ``str -> str``.

Rules run on folded text (ASCII plus a few currency and unit symbols), so
their patterns are compiled with ``re.ASCII``: ``\\d`` and ``\\b`` never see
other scripts.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["NUMBER", "Rule", "ends_sentence", "keep_period", "rule"]

Rule = Callable[[str], str]

# A number literal: thousands separators, decimals, or a bare ".5".
NUMBER = r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?|\.[0-9]+"


def rule(pattern: str, replace: Callable[[re.Match[str]], str], flags: int = 0) -> Rule:
    """A rule substituting every match of ``pattern`` with ``replace(match)``."""
    compiled = re.compile(pattern, re.ASCII | flags)

    def apply(text: str) -> str:
        return compiled.sub(replace, text)

    return apply


def ends_sentence(match: re.Match[str], before_capital: bool = True) -> bool:
    """Whether the text after ``match`` ends, or starts a new sentence."""
    rest = match.string[match.end() :]
    pattern = r"\s*(?:$|[A-Z\"])" if before_capital else r"\s*$"
    return re.match(pattern, rest) is not None


def keep_period(match: re.Match[str], words: str, before_capital: bool = True) -> str:
    """``words``, plus the period the match swallowed if it also ended a sentence.

    "at 7 a.m. Then" -> "seven a m. Then". With ``before_capital=False``
    (abbreviations such as "vs." that precede a name) only the end of the text
    counts as a sentence end.
    """
    if match.group(0).endswith(".") and ends_sentence(match, before_capital):
        return words + "."
    return words
