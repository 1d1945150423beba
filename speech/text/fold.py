"""Unicode folding: typographic characters to ASCII, unspeakable ones dropped.

After ``fold_unicode`` a text holds ASCII plus the few symbols that later
normalisation steps read (``£ € ¥ ¢ ° §``); ``drop_unsupported`` removes
everything else (emoji, non-Latin scripts, unknown symbols) and reports it.

    >>> fold_unicode("\u201cCaf\u00e9\u201d na\u00efve\u2026")
    '"Cafe" naive...'
"""

from __future__ import annotations

import re
import unicodedata

from speech.text.number_words import number_to_words, ordinal_words

__all__ = [
    "KEPT_SYMBOLS",
    "drop_unsupported",
    "dropped_characters",
    "fold_unicode",
    "fraction_words",
]

# Non-ASCII characters that survive folding because a later step reads them.
KEPT_SYMBOLS = "£€¥¢°§"

# fmt: off
_CHAR_MAP = (
    dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u00b4`", "'")
    | dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb\u2039\u203a", '"')
    | dict.fromkeys("\u2010\u2011\u2012\u2013\u2212", "-")  # hyphens, en dash, minus
    | dict.fromkeys("\u2014\u2015\u2e3a\u2e3b", " - ")  # em dashes: a pause
    | dict.fromkeys("\u2044\u2215", "/")
    | dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u00ad\u00ae\u2122", "")
    | {
        # letters that do not decompose to ASCII
        "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o",
        "Ø": "O", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th",
        "Þ": "Th", "ł": "l", "Ł": "L", "ı": "i", "ħ": "h", "ŋ": "ng",
        # symbols read as words
        "×": " times ", "÷": " divided by ", "±": " plus or minus ",
        "≈": " approximately ", "→": " to ", "©": " copyright ",
        "•": ", ", "·": " ", "…": "...",
    }
)
# fmt: on
_CHAR_TABLE = str.maketrans(_CHAR_MAP)

# fmt: off
_VULGAR_FRACTIONS = {
    "½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4),
    "⅕": (1, 5), "⅖": (2, 5), "⅗": (3, 5), "⅘": (4, 5), "⅙": (1, 6),
    "⅚": (5, 6), "⅛": (1, 8), "⅜": (3, 8), "⅝": (5, 8), "⅞": (7, 8),
}
# fmt: on
_VULGAR_RE = re.compile(r"([0-9])?\s?([" + "".join(_VULGAR_FRACTIONS) + "])")


def fraction_words(numerator: int, denominator: int) -> str:
    """ "one half", "three quarters", "five eighths"."""
    if denominator == 2:
        noun = "half" if numerator == 1 else "halves"
    elif denominator == 4:
        noun = "quarter" if numerator == 1 else "quarters"
    else:
        noun = ordinal_words(denominator)
        noun = noun if numerator == 1 else noun + "s"
    return f"{number_to_words(numerator)} {noun}"


def _vulgar(match: re.Match[str]) -> str:
    numerator, denominator = _VULGAR_FRACTIONS[match.group(2)]
    words = fraction_words(numerator, denominator)
    if match.group(1):
        return f"{match.group(1)} and {words} "
    return f" {words} "


def fold_unicode(text: str) -> str:
    """Map typographic characters to ASCII and strip diacritics."""
    text = re.sub(r".\x08", "", text)  # overstrike "x<BS>" (old fortune files)
    text = _VULGAR_RE.sub(_vulgar, text)
    text = text.translate(_CHAR_TABLE)
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_CHAR_TABLE)  # NFKC may produce mapped characters
    out = []
    for char in text:
        if char.isascii() or char in KEPT_SYMBOLS:
            out.append(char)
        elif unicodedata.category(char) == "Zs":
            out.append(" ")
        else:
            decomposed = unicodedata.normalize("NFKD", char)
            base = "".join(c for c in decomposed if not unicodedata.combining(c))
            out.append(base.translate(_CHAR_TABLE))
    return "".join(out)


def _is_supported(char: str) -> bool:
    return (" " <= char <= "~") or char in KEPT_SYMBOLS or char in "\t\n\r"


def drop_unsupported(text: str) -> tuple[str, list[str]]:
    """Replace unsupported characters of folded text by spaces.

    Returns the text and the distinct dropped characters (ASCII control
    characters are dropped silently and not listed).
    """
    dropped = [c for c in dict.fromkeys(text) if not _is_supported(c)]
    if not dropped:
        return text, []
    kept = "".join(c if _is_supported(c) else " " for c in text)
    return kept, [c for c in dropped if unicodedata.category(c) != "Cc"]


def dropped_characters(text: str) -> list[str]:
    """Characters ``normalize_text`` would drop (emoji, other scripts, ...).

    Distinct characters in order of first appearance, after folding.
    """
    return drop_unsupported(fold_unicode(text))[1]
