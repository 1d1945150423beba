"""Numbers as English words: cardinals, ordinals, years, decimals, digit strings.

American style without "and": 101 -> "one hundred one". Words are separated
by single spaces (no hyphens), which is what both the TTS front end and the
ASR transcripts want.

    >>> number_to_words(-1234)
    'minus one thousand two hundred thirty four'
    >>> ordinal_words(22)
    'twenty second'
    >>> year_words(1905), year_words(2005), year_words(2024)
    ('nineteen oh five', 'two thousand five', 'twenty twenty four')
"""

from __future__ import annotations

__all__ = [
    "decimal_to_words",
    "digits_to_words",
    "number_to_words",
    "ordinal_words",
    "plural_words",
    "year_words",
]

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve "
    "thirteen fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
# Short scale; beyond 10**36 numbers are read digit by digit.
_SCALES = (
    "thousand million billion trillion quadrillion quintillion sextillion "
    "septillion octillion nonillion decillion"
).split()
_MAX_CARDINAL = 10 ** (3 * (len(_SCALES) + 1))

_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def number_to_words(n: int) -> str:
    """Cardinal number words; digit by digit beyond the decillions."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= _MAX_CARDINAL:
        return digits_to_words(str(n))
    if n < 1000:
        return " ".join(_below_thousand(n))
    groups: list[int] = []
    while n:
        n, group = divmod(n, 1000)
        groups.append(group)
    words: list[str] = []
    for power in range(len(groups) - 1, -1, -1):
        if groups[power]:
            words += _below_thousand(groups[power])
            if power:
                words.append(_SCALES[power - 1])
    return " ".join(words)


def ordinal_words(n: int) -> str:
    """Ordinal number words: 1 -> "first", 22 -> "twenty second"."""
    head, _, last = number_to_words(n).rpartition(" ")
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}" if head else last


def plural_words(words: str) -> str:
    """Plural of a number phrase: "nineteen eighty" -> "nineteen eighties"."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    if words.endswith("x"):
        return words + "es"
    return words + "s"


def year_words(year: int) -> str:
    """A year as people say it: 1984 -> "nineteen eighty four".

    2000..2009 use "two thousand"; other years of 1100..9999 are read as two
    pairs ("twenty ten", "nineteen oh five", "nineteen hundred"); anything else
    is a plain cardinal.
    """
    if not 1000 <= year <= 9999 or 2000 <= year <= 2009 or year % 1000 < 10:
        return number_to_words(year)
    high, low = divmod(year, 100)
    if low == 0:
        return f"{number_to_words(high)} hundred"
    if low < 10:
        return f"{number_to_words(high)} oh {_ONES[low]}"
    return f"{number_to_words(high)} {number_to_words(low)}"


def digits_to_words(digits: str) -> str:
    """Read a string of ASCII digits one by one: "007" -> "zero zero seven"."""
    return " ".join(_ONES[int(d)] for d in digits if "0" <= d <= "9")


def decimal_to_words(number: str) -> str:
    """A decimal literal without separators: "3.14" -> "three point one four".

    A leading "-" reads as "minus"; an integer part of zeros with more than one
    digit ("007") is read digit by digit.
    """
    sign = ""
    if number.startswith("-"):
        sign, number = "minus ", number[1:]
    whole, _, fraction = number.partition(".")
    if not whole:
        spoken = ""
    elif len(whole) > 1 and whole.startswith("0"):
        spoken = digits_to_words(whole)
    else:
        spoken = number_to_words(int(whole))
    if fraction:
        spoken = f"{spoken} point {digits_to_words(fraction)}".strip()
    return sign + spoken
