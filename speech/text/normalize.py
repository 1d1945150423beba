"""English text normalisation: written text to speakable words.

Three entry points share one pipeline:

* ``normalize_text`` - the TTS front end and the text a corpus is read from:
  numbers, dates, times, money, units, abbreviations and symbols become words;
  case and sentence punctuation (``. , ? ! ; :`` and `` - `` for a dash) stay so
  a synthesizer can place pauses.
* ``asr_transcript`` - the canonical form of ASR targets and of WER scoring:
  the normalised text lower-cased, only ``a-z``, word-internal apostrophes and
  single spaces.
* ``split_sentences`` - sentence splitting that survives abbreviations and
  cuts over-long sentences at clause punctuation, then at word boundaries.

Odd input never raises: accented Latin letters are folded to ASCII
(``café`` -> ``cafe``); emoji, other scripts and unknown symbols are dropped
with a logged warning (``dropped_characters`` reports them without logging).

    >>> normalize_text("Dr. Smith paid $5.50 on Jan. 5, 2020.")
    'Doctor Smith paid five dollars and fifty cents on January fifth, twenty twenty.'
    >>> asr_transcript("It's 22nd & 1984!")
    "it's twenty second and nineteen eighty four"
"""

from __future__ import annotations

import logging
import re

from speech.text.abbreviations import (
    ABBREVIATION_RULES,
    ADDRESS_RULES,
    NON_TERMINAL,
)
from speech.text.fold import drop_unsupported, dropped_characters, fold_unicode
from speech.text.numeric import EXPRESSION_RULES, NUMBER_RULES
from speech.text.rules import Rule

__all__ = [
    "asr_transcript",
    "dropped_characters",
    "normalize_text",
    "split_sentences",
]

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Symbols and punctuation
# ---------------------------------------------------------------------------

_SYMBOL_WORDS = {
    "&": " and ",
    "+": " plus ",
    "@": " at ",
    "=": " equals ",
    "%": " percent ",
    "°": " degrees ",
    "§": " section ",
    "¢": " cents ",
    "$": " dollars ",
    "£": " pounds ",
    "€": " euros ",
    "¥": " yen ",
    "(": ", ",
    ")": ", ",
    "[": ", ",
    "]": ", ",
    "{": ", ",
    "}": ", ",
    "/": " ",
    "_": " ",
    "|": " ",
    "\\": " ",
    '"': " ",
    "*": " ",
    "^": " ",
    "<": " ",
    ">": " ",
    "#": " ",
    "~": " ",
}
_SYMBOL_TABLE = str.maketrans(_SYMBOL_WORDS)


def _merge_punctuation(run: str) -> str:
    """One mark for a run such as ``?!``, ``.,`` or ``, -``."""
    for strong in "?!":
        if strong in run:
            return strong
    for mark in ".;:,-":
        if mark in run:
            return mark
    return ""


_PUNCTUATION_RUN = re.compile(r"(?:\s*(?:[,.?!;:]|(?<=\s)-(?=\s)))+\s*")


def _punctuation_run(match: re.Match[str]) -> str:
    mark = _merge_punctuation(match.group(0))
    return " - " if mark == "-" else mark + " "


def _tidy(text: str) -> str:
    text = text.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    # Ellipses: a sentence end before a capital, otherwise a comma-like pause.
    text = re.sub(r"\.(?:\s*\.){1,}(?=\s*(?:$|[A-Z]))", ".", text)
    text = re.sub(r"\.(?:\s*\.){1,}", ",", text)
    # Dashes between words: "a -- b", "a - b", "a- b" become " - ".
    text = re.sub(r"\s*-{2,}\s*|\s+-+\s*|\s*-+\s+", " - ", text)
    text = re.sub(r"^\s*-+|-+\s*$", " ", text)
    # Apostrophes only inside words.
    text = re.sub(r"(?<![A-Za-z])'|'(?![A-Za-z])", " ", text)
    text = re.sub(r"[^A-Za-z' ,.?!;:-]", " ", text)
    # Collapse punctuation runs and fix spacing around marks.
    text = _PUNCTUATION_RUN.sub(_punctuation_run, text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^(?:[,.?!;:-]\s*)+", "", text)
    text = re.sub(r"\s+-$", "", text)
    return text


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------

# URLs before dates ("/" and "."), dates before abbreviations ("Jan. 5"),
# abbreviations before plain numbers ("No. 5").
_PIPELINE: tuple[Rule, ...] = (
    *ADDRESS_RULES,
    *EXPRESSION_RULES,
    *ABBREVIATION_RULES,
    *NUMBER_RULES,
)


def _normalize(text: str) -> tuple[str, list[str]]:
    text, dropped = drop_unsupported(fold_unicode(text))
    for step in _PIPELINE:
        text = step(text)
    text = text.translate(_SYMBOL_TABLE)
    return _tidy(text), dropped


def normalize_text(text: str) -> str:
    """Written English to speakable words, keeping case and sentence punctuation.

    Numbers, ordinals, years, money, percentages, dates, times, common
    abbreviations and units, symbols and safe Roman numerals become words;
    typographic quotes and dashes are folded; a dash between words is kept as
    `` - `` and ``. , ? ! ; :`` stay for the synthesizer's pauses. Characters
    that cannot be spoken (emoji, non-Latin scripts) are dropped with a
    warning. Never raises on a ``str``.
    """
    normalized, dropped = _normalize(text)
    if dropped:
        logger.warning(
            "normalize_text dropped %d unsupported character(s): %s",
            len(dropped),
            " ".join(f"{c!r}(U+{ord(c):04X})" for c in dropped[:10]),
        )
    return normalized


def asr_transcript(text: str) -> str:
    """Canonical ASR target / WER form: normalised, lower case, ``a-z'`` words.

    Apostrophes survive only inside words ("it's"); everything else that is
    not a letter becomes a word break; words are joined by single spaces.
    """
    text = normalize_text(text).lower()
    text = re.sub(r"[^a-z']+", " ", text)
    text = re.sub(r"(?<![a-z])'+|'+(?![a-z])", " ", text)
    return " ".join(text.split())


# -- sentence splitting ------------------------------------------------------

_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*(?=\s)")
_STARTS_SENTENCE = re.compile(r"\s+[\"'(\[]*[A-Z0-9]")


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    if not _STARTS_SENTENCE.match(text, match.end()):
        return False
    if text[match.start()] != ".":
        return True
    word = re.search(r"([A-Za-z.]+)$", text[: match.start()])
    if word is None:
        return True
    token = word.group(1).lower().strip(".")
    if token in NON_TERMINAL:
        return False
    # Initials ("J. R. R. Tolkien") and dotted initialisms ("U.S.").
    return not (len(token) == 1 or re.fullmatch(r"(?:[a-z]\.)+[a-z]", token))


def _split_long(sentence: str, max_chars: int) -> list[str]:
    """Cut at clause punctuation, then at spaces, then hard."""
    if len(sentence) <= max_chars:
        return [sentence]
    for separator in (r"(?<=[;:])\s+", r"(?<=,)\s+|\s+(?=- )", r"\s+"):
        parts = [p for p in re.split(separator, sentence) if p]
        if len(parts) > 1:
            break
    else:
        return [sentence[i : i + max_chars] for i in range(0, len(sentence), max_chars)]
    pieces: list[str] = []
    current = ""
    for part in parts:
        candidate = f"{current} {part}" if current else part
        if len(candidate) <= max_chars:
            current = candidate
            continue
        if current:
            pieces.append(current)
        current = part
    if current:
        pieces.append(current)
    return [q for p in pieces for q in _split_long(p, max_chars)]


def split_sentences(text: str, max_chars: int = 400) -> list[str]:
    """Split text into sentences; no piece is longer than ``max_chars``.

    A sentence ends at ``. ! ?`` (with closing quotes or brackets) followed by
    a capital letter or digit, unless the period belongs to a title ("Mr."),
    an abbreviation before a number ("No. 5"), an initial ("J.") or a dotted
    initialism ("U.S."). Blank lines always end a sentence. Over-long
    sentences are cut at ``; :`` then ``,`` or dashes, then between words, and
    a single word longer than ``max_chars`` is cut hard.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        start = 0
        for match in _BOUNDARY.finditer(paragraph):
            if _is_boundary(paragraph, match):
                sentences.append(paragraph[start : match.end()].strip())
                start = match.end()
        sentences.append(paragraph[start:].strip())
    return [p for s in sentences if s for p in _split_long(s, max_chars)]
