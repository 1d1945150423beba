"""Number-bearing expressions to words: dates, times, money, units, numbers.

The rules run in two groups. ``EXPRESSION_RULES`` read numbers whose meaning
comes from their shape or neighbours (dates, clock times, phone numbers,
money, percentages, units, ordinals, decades, ranges, fractions);
``NUMBER_RULES`` then read whatever digits remain as plain numbers, a bare
four-digit number of 1100..2099 as a year.

    >>> expand_numbers("On 2020-01-05 at 3:30 pm, up 3%.")
    'On January fifth, twenty twenty at three thirty p m, up three percent.'
"""

from __future__ import annotations

import re

from speech.text.fold import fraction_words
from speech.text.number_words import (
    decimal_to_words,
    digits_to_words,
    number_to_words,
    ordinal_words,
    plural_words,
    year_words,
)
from speech.text.rules import NUMBER, Rule, keep_period, rule

__all__ = [
    "EXPRESSION_RULES",
    "MONTH_ABBREVIATIONS",
    "NUMBER_RULES",
    "expand_numbers",
]

_MONTHS = (
    "January February March April May June July August September October "
    "November December"
).split()
MONTH_ABBREVIATIONS = {
    "Jan": 1,
    "Feb": 2,
    "Mar": 3,
    "Apr": 4,
    "Jun": 6,
    "Jul": 7,
    "Aug": 8,
    "Sep": 9,
    "Sept": 9,
    "Oct": 10,
    "Nov": 11,
    "Dec": 12,
}
_MONTH_NUMBER = {name: i + 1 for i, name in enumerate(_MONTHS)}
_MONTH_RE = "(" + "|".join(_MONTHS) + "|(?:" + "|".join(MONTH_ABBREVIATIONS) + r")\.?)"


def _number_words(literal: str) -> str:
    """Any number literal with optional thousands separators and decimals."""
    literal = literal.replace(",", "")
    if "." in literal:
        return decimal_to_words(literal)
    if len(literal) > 1 and literal.startswith("0"):
        return digits_to_words(literal)
    return number_to_words(int(literal))


def _is_one(literal: str) -> bool:
    return literal.replace(",", "") == "1"


# ---------------------------------------------------------------------------
# Dates and times
# ---------------------------------------------------------------------------


def _date_words(month: int, day: int, year: str | None) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    words = f"{_MONTHS[month - 1]} {ordinal_words(day)}"
    if year:
        words += ", " + _two_or_four_digit_year(year)
    return words


def _two_or_four_digit_year(year: str) -> str:
    if len(year) == 2:
        return (
            f"oh {_ONES_DIGIT[year[1]]}"
            if year[0] == "0"
            else number_to_words(int(year))
        )
    return year_words(int(year))


_ONES_DIGIT = {str(i): digits_to_words(str(i)) for i in range(10)}


def _iso_date(match: re.Match[str]) -> str:
    year, month, day = match.groups()
    return _date_words(int(month), int(day), year) or match.group(0)


def _us_date(match: re.Match[str]) -> str:
    """Month first (US); day first only where the first number cannot be a month."""
    first, second, year = match.groups()
    month, day = int(first), int(second)
    if month > 12:
        month, day = day, month
    return _date_words(month, day, year) or match.group(0)


def _month_of(name: str) -> int:
    name = name.rstrip(".")
    return _MONTH_NUMBER.get(name) or MONTH_ABBREVIATIONS[name]


def _month_day(match: re.Match[str]) -> str:
    month, day, year = match.groups()
    words = _date_words(_month_of(month), int(day), year)
    return words if words else match.group(0)


def _day_month(match: re.Match[str]) -> str:
    day, month, year = match.groups()
    words = _date_words(_month_of(month), int(day), year)
    if words is None:
        return match.group(0)
    name, _, rest = words.partition(" ")
    ordinal, _, year_part = rest.partition(", ")
    before = match.string[: match.start()].rstrip().lower()
    the = "" if before.endswith("the") else "the "
    spoken = f"{the}{ordinal} of {name}"
    return f"{spoken}, {year_part}" if year_part else spoken


_ISO_DATE = rule(r"\b([0-9]{4})-([0-9]{2})-([0-9]{2})\b", _iso_date)
_US_DATE = rule(r"\b([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}|[0-9]{2})\b", _us_date)
_MONTH_DAY = rule(
    rf"\b{_MONTH_RE}\s+([0-9]{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+([0-9]{{4}})\b)?",
    _month_day,
)
_DAY_MONTH = rule(
    rf"\b([0-9]{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_RE}(?![A-Za-z])"
    r"(?:,?\s+([0-9]{4})\b)?",
    _day_month,
)


def _minutes_words(minutes: int) -> str:
    if minutes < 10:
        return f"oh {number_to_words(minutes)}"
    return number_to_words(minutes)


def _ampm(letter: str | None) -> str:
    return f" {letter.lower()} m" if letter else ""


def _clock(match: re.Match[str]) -> str:
    hours, minutes, seconds, letter = match.groups()
    h, m = int(hours), int(minutes)
    if h > 24 or m > 59:
        return match.group(0)
    words = number_to_words(h)
    if m:
        words += " " + _minutes_words(m)
    elif not letter and not seconds:
        words += " o'clock"
    if seconds:
        words += f" and {number_to_words(int(seconds))} seconds"
    return keep_period(match, words + _ampm(letter))


def _hour_ampm(match: re.Match[str]) -> str:
    hours, letter = match.groups()
    if not 1 <= int(hours) <= 12:
        return match.group(0)
    return keep_period(match, number_to_words(int(hours)) + _ampm(letter))


_AMPM = r"(?:\s*([AaPp])\.?[Mm](?![A-Za-z])\.?)"
_CLOCK = rule(
    rf"\b([0-9]{{1,2}}):([0-9]{{2}})(?::([0-9]{{2}}))?(?![0-9]){_AMPM}?", _clock
)
_HOUR_AMPM = rule(rf"\b([0-9]{{1,2}}){_AMPM}", _hour_ampm)
_RATIO = rule(
    r"\b([0-9]+):([0-9]+)\b",
    lambda m: f"{_number_words(m.group(1))} to {_number_words(m.group(2))}",
)

# ---------------------------------------------------------------------------
# Money, percentages, units
# ---------------------------------------------------------------------------

_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "sen", "sen"),
}
_SCALE_WORDS = {
    "thousand": "thousand",
    "million": "million",
    "billion": "billion",
    "trillion": "trillion",
    "k": "thousand",
    "K": "thousand",
    "m": "million",
    "mn": "million",
    "M": "million",
    "b": "billion",
    "bn": "billion",
    "B": "billion",
    "tn": "trillion",
}
_SCALE_RE = "|".join(sorted(_SCALE_WORDS, key=len, reverse=True))


def _money_words(symbol: str, amount: str, scale: str | None) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[symbol]
    amount = amount.replace(",", "")
    if scale:
        return f"{_number_words(amount)} {_SCALE_WORDS[scale]} {many}"
    whole, _, cents = amount.partition(".")
    if cents and len(cents) != 2:
        return f"{_number_words(amount)} {many}"
    units = int(whole) if whole else 0
    sub = int(cents) if cents else 0
    parts = []
    if units or not sub:
        parts.append(f"{number_to_words(units)} {one if units == 1 else many}")
    if sub:
        parts.append(f"{number_to_words(sub)} {sub_one if sub == 1 else sub_many}")
    return " and ".join(parts)


def _money_before(match: re.Match[str]) -> str:
    minus, symbol, amount, scale = match.groups()
    words = _money_words(symbol, amount, scale)
    return ("minus " if minus else "") + words


def _money_after(match: re.Match[str]) -> str:
    amount, symbol = match.groups()
    return _money_words(symbol, amount, None)


def _cents(match: re.Match[str]) -> str:
    amount = match.group(1)
    return f"{_number_words(amount)} {'cent' if _is_one(amount) else 'cents'}"


_MONEY_BEFORE = rule(
    rf"(?<![\w])(-)?([$£€¥])\s?({NUMBER})(?:\s?({_SCALE_RE})\b)?", _money_before
)
_MONEY_AFTER = rule(rf"\b({NUMBER})\s?([£€¥])", _money_after)
_CENTS = rule(rf"\b({NUMBER})\s?¢", _cents)
_PERCENT = rule(
    rf"(?<![\w.])(-)?({NUMBER})\s?%",
    lambda m: ("minus " if m.group(1) else "") + _number_words(m.group(2)) + " percent",
)

# unit -> (singular, plural); case-sensitive, only right after a number.
_UNITS = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "km": ("kilometer", "kilometers"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "g": ("gram", "grams"),
    "ml": ("milliliter", "milliliters"),
    "lbs": ("pound", "pounds"),
    "lb": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ft": ("foot", "feet"),
    "mi": ("mile", "miles"),
    "TB": ("terabyte", "terabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "MB": ("megabyte", "megabytes"),
    "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"),
    "GHz": ("gigahertz", "gigahertz"),
    "MHz": ("megahertz", "megahertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "Hz": ("hertz", "hertz"),
    "kW": ("kilowatt", "kilowatts"),
    "ms": ("millisecond", "milliseconds"),
    "min": ("minute", "minutes"),
    "hrs": ("hour", "hours"),
    "hr": ("hour", "hours"),
    "yrs": ("year", "years"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
}
_UNIT_RE = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))


def _unit(match: re.Match[str]) -> str:
    minus, amount, unit = match.groups()
    singular, plural = _UNITS[unit]
    words = f"{_number_words(amount)} {singular if _is_one(amount) else plural}"
    return ("minus " if minus else "") + words


_UNIT = rule(rf"(?<![\w.])(-)?({NUMBER})\s?({_UNIT_RE})(?![A-Za-z0-9])", _unit)

# ---------------------------------------------------------------------------
# Ordinals, decades, ranges, fractions, phone numbers
# ---------------------------------------------------------------------------

_ORDINAL = rule(
    r"\b([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:st|nd|rd|th)\b",
    lambda m: ordinal_words(int(m.group(1).replace(",", ""))),
    re.IGNORECASE,
)


def _decade(match: re.Match[str]) -> str:
    digits = match.group(1)
    if len(digits) == 4:
        return plural_words(year_words(int(digits)))
    return plural_words(number_to_words(int(digits)))


_DECADE = rule(r"(?:\b|')([0-9]{3}0|[0-9]0)'?s\b", _decade)
_PLURAL_NUMBER = rule(
    r"\b([0-9]+)'?s\b", lambda m: plural_words(number_to_words(int(m.group(1))))
)


def _phone(match: re.Match[str]) -> str:
    groups = [g for g in match.groups() if g]
    return ", ".join(digits_to_words(g) for g in groups)


_PHONE = rule(
    r"(?<![\w-])\(?([0-9]{3})\)?[ -]?([0-9]{3})-([0-9]{4})\b"
    r"|(?<![\w-])([0-9]{3})-([0-9]{4})\b",
    _phone,
)


def _range_end(literal: str) -> str:
    if len(literal) == 4 and 1100 <= int(literal) <= 2099:
        return year_words(int(literal))
    return _number_words(literal)


_RANGE = rule(
    r"\b([0-9]+)-([0-9]+)\b",
    lambda m: f"{_range_end(m.group(1))} to {_range_end(m.group(2))}",
)
_TIMES = rule(
    r"\b([0-9]+)\s?x\s?([0-9]+)\b",
    lambda m: f"{_number_words(m.group(1))} by {_number_words(m.group(2))}",
)
_TIMES_SUFFIX = rule(r"\b([0-9]+)x\b", lambda m: f"{_number_words(m.group(1))} times")


def _fraction(match: re.Match[str]) -> str:
    whole, numerator, denominator = match.groups()
    n, d = int(numerator), int(denominator)
    if not 0 < n < d <= 10:
        # "9/11", "24/7", "50/50": read the numbers, not a fraction.
        words = f"{number_to_words(n)} {number_to_words(d)}"
    else:
        words = fraction_words(n, d)
    return f"{number_to_words(int(whole))} and {words}" if whole else words


_FRACTION = rule(r"\b(?:([0-9]+)\s+)?([0-9]+)/([0-9]+)\b", _fraction)


# ---------------------------------------------------------------------------
# Plain numbers
# ---------------------------------------------------------------------------


def _plain_number(match: re.Match[str]) -> str:
    minus, literal = match.groups()
    sign = "minus " if minus else ""
    if (
        not minus
        and len(literal) == 4
        and literal.isdigit()
        and 1100 <= int(literal) <= 2099
    ):
        return f" {year_words(int(literal))} "
    return f" {sign}{_number_words(literal)} "


_LETTER_DIGIT = rule(
    r"(?<=[A-Za-z])-?(?=[0-9])|(?<=[0-9])-?(?=[A-Za-z])", lambda m: " "
)
_NUMBERS = rule(rf"(?:(?<![\w.-])(-))?({NUMBER})", _plain_number)


_TILDE_NUMBER = rule(r"~\s?(?=[0-9])", lambda m: "about ")

EXPRESSION_RULES: tuple[Rule, ...] = (
    _ISO_DATE,
    _US_DATE,
    _MONTH_DAY,
    _DAY_MONTH,
    _CLOCK,
    _HOUR_AMPM,
    _RATIO,
    _PHONE,
    _MONEY_BEFORE,
    _MONEY_AFTER,
    _CENTS,
    _PERCENT,
    _UNIT,
    _DECADE,
    _ORDINAL,
    _TIMES,
    _TIMES_SUFFIX,
    _FRACTION,
    _RANGE,
)
NUMBER_RULES: tuple[Rule, ...] = (
    _TILDE_NUMBER,
    _PLURAL_NUMBER,
    _LETTER_DIGIT,
    _NUMBERS,
)


def expand_numbers(text: str) -> str:
    """Apply ``EXPRESSION_RULES`` then ``NUMBER_RULES`` (no digits remain)."""
    for step in EXPRESSION_RULES + NUMBER_RULES:
        text = step(text)
    return " ".join(text.split())
