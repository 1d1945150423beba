"""Abbreviations, initialisms, safe Roman numerals and web addresses to words.

Titles ("Mr.", "Dr.", "St.") expand only before a capitalised name; "Dr." and
"St." after a name read "Drive" and "Street". Roman numerals are read only
after words that make them unambiguous ("Chapter IV", "Henry VIII"); a lone
"I" only where it cannot be the pronoun.

    >>> expand_abbreviations("Mr. Smith read Chapter IV on Elm St. with Henry VIII.")
    'Mister Smith read Chapter four on Elm Street with Henry the eighth.'
"""

from __future__ import annotations

import re

from speech.text.number_words import digits_to_words, number_to_words, ordinal_words
from speech.text.numeric import MONTH_ABBREVIATIONS
from speech.text.rules import Rule, keep_period, rule

__all__ = [
    "ABBREVIATION_RULES",
    "ADDRESS_RULES",
    "NON_TERMINAL",
    "expand_abbreviations",
]

# ---------------------------------------------------------------------------
# Web addresses
# ---------------------------------------------------------------------------


def _spell_address(address: str) -> str:
    address = re.sub(r"^[a-z]+://", "", address)
    address = address.rstrip("/")
    for symbol, word in ((".", " dot "), ("/", " slash "), ("@", " at ")):
        address = address.replace(symbol, word)
    address = re.sub(r"[-_~:?=&#%+]", " ", address)
    return " ".join(
        digits_to_words(part) if part.isdigit() else part for part in address.split()
    )


_EMAIL = rule(
    r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
    lambda m: _spell_address(m.group(0)),
)
_URL = rule(
    r"\b(?:https?://|www\.)[^\s\"'<>]*[^\s\"'<>.,;:!?)]",
    lambda m: _spell_address(m.group(0)),
)

# ---------------------------------------------------------------------------
# Abbreviations
# ---------------------------------------------------------------------------

# Titles that precede a name: expanded only when a capitalised word follows.
_TITLES = {
    "Mr": "Mister",
    "Mrs": "Missus",
    "Ms": "Miz",
    "Dr": "Doctor",
    "Prof": "Professor",
    "Gen": "General",
    "Capt": "Captain",
    "Lt": "Lieutenant",
    "Col": "Colonel",
    "Sgt": "Sergeant",
    "Rev": "Reverend",
    "Hon": "Honorable",
    "Gov": "Governor",
    "Sen": "Senator",
    "Rep": "Representative",
    "Pres": "President",
    "Fr": "Father",
    "Mt": "Mount",
    "Ft": "Fort",
    "St": "Saint",
}
# Abbreviations that need their period; they may end a sentence.
_ABBREVIATIONS = {
    "etc": "et cetera",
    "approx": "approximately",
    "dept": "department",
    "est": "established",
    "Inc": "Incorporated",
    "Ltd": "Limited",
    "Corp": "Corporation",
    "Jr": "Junior",
    "Sr": "Senior",
    "Ave": "Avenue",
    "Blvd": "Boulevard",
    "Rd": "Road",
    "misc": "miscellaneous",
    "Bros": "Brothers",
    "Messrs": "Messieurs",
    "Mme": "Madame",
    "Jan": "January",
    "Feb": "February",
    "Mar": "March",
    "Apr": "April",
    "Jun": "June",
    "Jul": "July",
    "Aug": "August",
    "Sept": "September",
    "Sep": "September",
    "Oct": "October",
    "Nov": "November",
    "Dec": "December",
}
# Dotted forms matched literally (case-insensitive).
_DOTTED = {
    "e.g.": "for example",
    "i.e.": "that is",
    "a.k.a.": "also known as",
    "cf.": "compare",
    "et al.": "et al",
    "ph.d.": "P H D",
    "vs.": "versus",
}
# Abbreviations read this way only before a number.
_BEFORE_NUMBER = {
    "No": "number",
    "Nos": "numbers",
    "no": "number",
    "p": "page",
    "pp": "pages",
    "vol": "volume",
    "Vol": "volume",
    "ch": "chapter",
    "Ch": "chapter",
    "fig": "figure",
    "Fig": "figure",
}


def _title(match: re.Match[str]) -> str:
    abbreviation = match.group(1)
    before = match.string[: match.start()]
    after = match.string[match.end() :]
    next_capital = re.match(r"\s+[A-Z]", after) is not None
    previous_word = re.search(r"([A-Za-z0-9]+)\s*$", before)
    after_name = previous_word is not None and (
        previous_word.group(1)[0].isupper() or previous_word.group(1)[0].isdigit()
    )
    if abbreviation == "St" and after_name and not next_capital:
        return keep_period(match, "Street")
    if abbreviation == "St" and previous_word and previous_word.group(1)[0].isdigit():
        return keep_period(match, "Street")
    if abbreviation == "Dr" and after_name and not next_capital:
        return keep_period(match, "Drive")
    if not next_capital:
        return match.group(0)
    return _TITLES[abbreviation]


def _abbreviation(match: re.Match[str]) -> str:
    return keep_period(match, _ABBREVIATIONS[match.group(1)])


def _dotted(match: re.Match[str]) -> str:
    return keep_period(match, _DOTTED[match.group(0).lower()], before_capital=False)


def _initialism(match: re.Match[str]) -> str:
    letters = match.group(0).replace(".", " ").split()
    return keep_period(match, " ".join(letters))


_TITLE = rule(r"(?<![\w.])(" + "|".join(_TITLES) + r")\b\.?", _title)
_ABBREVIATION = rule(r"(?<![\w.])(" + "|".join(_ABBREVIATIONS) + r")\.", _abbreviation)
_DOTTED_RE = rule(
    r"(?<![\w.])(?:" + "|".join(re.escape(d) for d in _DOTTED) + ")",
    _dotted,
    re.IGNORECASE,
)
_NUMBER_ABBREVIATION = rule(
    r"(?<![\w.])(" + "|".join(_BEFORE_NUMBER) + r")\.\s?(?=[0-9])",
    lambda m: _BEFORE_NUMBER[m.group(1)] + " ",
)
_HASH_NUMBER = rule(r"#\s?(?=[0-9])", lambda m: "number ")
_INITIALISM = rule(r"(?<![\w.])(?:[A-Za-z]\.){2,}(?![A-Za-z])", _initialism)
_NAME_INITIAL = rule(
    r"(?<=[A-Za-z] )([A-Z])\.(?=\s+[A-Z])",
    lambda m: (
        m.group(1)
        if re.search(r"(?:^|\s)[A-Z][A-Za-z]*\s$", m.string[: m.start()])
        else m.group(0)
    ),
)

# ---------------------------------------------------------------------------
# Roman numerals (only after words that make them unambiguous)
# ---------------------------------------------------------------------------

_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_ROMAN = r"(M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3}))"
_ROMAN_CARDINAL_CONTEXT = (
    "Chapter Book Part Volume Vol Act Scene Section Article Appendix Psalm "
    "Canto Phase Stage Level Round Title Class Type Mark Episode War Bowl "
    "Apollo Vatican Unit Grade Series Gemini Rocky"
).split()
_REGNAL_NAMES = (
    "Henry Edward George William Richard Charles James Louis Elizabeth Mary "
    "John Anne Victoria Philip Frederick Ferdinand Alexander Nicholas Peter "
    "Catherine Ivan Pius Leo Gregory Benedict Innocent Clement Boniface Urban "
    "Paul Francis Napoleon Otto Wilhelm Alfonso Carlos Juan Gustav Gustavus "
    "Christian Umberto Rudolf Haakon Olaf Harald Friedrich Karl Ludwig "
    "Constantine Ramesses Ramses Thutmose Amenhotep Ptolemy Antiochus Selim "
    "Suleiman Mehmed David Robert Malcolm Kenneth Duncan Stephen Edmund Harold "
    "Alfred Willem Sancho Pedro Manuel Joseph Leopold Maximilian Sigismund "
    "Casimir Matthias Sixtus Julius Eugene Hadrian Adrian Celestine Honorius "
    "Martin Felix Sergius Anastasius Edgar Canute Cnut Rama Farouk Hussein"
).split()


def _roman_value(numeral: str) -> int:
    total = 0
    for i, char in enumerate(numeral):
        value = _ROMAN_VALUES[char]
        if i + 1 < len(numeral) and _ROMAN_VALUES[numeral[i + 1]] > value:
            total -= value
        else:
            total += value
    return total


def _roman_cardinal(match: re.Match[str]) -> str:
    word, numeral = match.groups()
    if not numeral:
        return match.group(0)
    return f"{word} {number_to_words(_roman_value(numeral))}"


def _roman_regnal(match: re.Match[str]) -> str:
    name, numeral = match.groups()
    if not numeral:
        return match.group(0)
    if numeral == "I":
        # "Mary I think" is a pronoun; accept "I" only before punctuation or "of".
        rest = match.string[match.end() :]
        if not re.match(r"\s*(?:$|[.,;:!?)\-]|of\b)", rest):
            return match.group(0)
    return f"{name} the {ordinal_words(_roman_value(numeral))}"


_ROMAN_CARDINAL = rule(
    r"\b(" + "|".join(_ROMAN_CARDINAL_CONTEXT) + r")\.?\s+" + _ROMAN + r"(?![\w'])",
    _roman_cardinal,
)
_ROMAN_REGNAL = rule(
    r"\b(" + "|".join(_REGNAL_NAMES) + r")\s+" + _ROMAN + r"(?![\w'])",
    _roman_regnal,
)


ADDRESS_RULES: tuple[Rule, ...] = (_EMAIL, _URL)
ABBREVIATION_RULES: tuple[Rule, ...] = (
    _HASH_NUMBER,
    _NUMBER_ABBREVIATION,
    _DOTTED_RE,
    _TITLE,
    _ABBREVIATION,
    _INITIALISM,
    _ROMAN_CARDINAL,
    _ROMAN_REGNAL,
    _NAME_INITIAL,
)

# Lower-case words whose period does not end a sentence before a capital.
NON_TERMINAL = frozenset(
    {t.lower() for t in _TITLES}
    | {k.lower() for k in _BEFORE_NUMBER}
    | {m.lower() for m in MONTH_ABBREVIATIONS}
    | {"vs", "e.g", "i.e", "cf", "approx", "a.k.a", "ca"}
)


def expand_abbreviations(text: str) -> str:
    """Apply ``ADDRESS_RULES`` then ``ABBREVIATION_RULES``."""
    for step in ADDRESS_RULES + ABBREVIATION_RULES:
        text = step(text)
    return text
