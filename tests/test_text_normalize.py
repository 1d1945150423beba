"""English normalisation, ASR transcripts and sentence splitting."""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speech.text.normalize import (
    asr_transcript,
    dropped_characters,
    normalize_text,
    split_sentences,
)
from speech.text.number_words import number_to_words, ordinal_words, year_words

CASES = [
    # cardinals, negatives, decimals, separators, large numbers
    ("I have 3 apples.", "I have three apples."),
    ("It was -5 outside", "It was minus five outside"),
    ("Pi is 3.14", "Pi is three point one four"),
    ("1,000,000 people", "one million people"),
    ("12,345.67", "twelve thousand three hundred forty five point six seven"),
    ("007", "zero zero seven"),
    (
        "123456789012",
        "one hundred twenty three billion four hundred fifty six million "
        "seven hundred eighty nine thousand twelve",
    ),
    # ordinals
    ("the 1st and 22nd and 101st", "the first and twenty second and one hundred first"),
    # years and decades
    ("In 1984.", "In nineteen eighty four."),
    ("In 2005.", "In two thousand five."),
    (
        "In 2024 and 1905 and 1900",
        "In twenty twenty four and nineteen oh five and nineteen hundred",
    ),
    ("the 1980s and '90s", "the nineteen eighties and nineties"),
    # currency, percentages, units
    ("$5.50", "five dollars and fifty cents"),
    ("£3 and €10", "three pounds and ten euros"),
    ("$1 or $0.50", "one dollar or fifty cents"),
    ("5 cents", "five cents"),
    ("$5 million", "five million dollars"),
    ("50% and 3.5%", "fifty percent and three point five percent"),
    ("5 km and 1 kg", "five kilometers and one kilogram"),
    ("20°C", "twenty degrees Celsius"),
    # dates
    ("Jan. 5, 2020", "January fifth, twenty twenty"),
    ("2020-01-05", "January fifth, twenty twenty"),
    ("5/1/2020", "May first, twenty twenty"),
    ("on 5 March 2021", "on the fifth of March, twenty twenty one"),
    # times
    ("at 3:30 pm", "at three thirty p m"),
    ("at 10:05", "at ten oh five"),
    ("at 10:00", "at ten o'clock"),
    ("at 7 a.m. Then", "at seven a m. Then"),
    # abbreviations
    ("Mr. Smith and Mrs. Jones", "Mister Smith and Missus Jones"),
    ("Dr. Who lives on Oak Dr. now", "Doctor Who lives on Oak Drive now"),
    ("St. Paul on Elm St. today", "Saint Paul on Elm Street today"),
    ("Ali vs. Frazier", "Ali versus Frazier"),
    ("pears, etc.", "pears, et cetera."),
    ("e.g. this, i.e. that", "for example this, that is that"),
    ("No. 5", "number five"),
    ("the U.S. Army", "the U S Army"),
    # symbols
    ("Tom & Jerry + friends @ home", "Tom and Jerry plus friends at home"),
    # Roman numerals only where safe
    ("Chapter IV", "Chapter four"),
    ("Henry VIII was king", "Henry the eighth was king"),
    ("World War II", "World War two"),
    ("Elizabeth I.", "Elizabeth the first."),
    ("Mary I think", "Mary I think"),
    ("I, II and MIX", "I, II and MIX"),
    # unicode folding, punctuation and whitespace
    ("\u201cSmart\u201d \u2018quotes\u2019", "Smart quotes"),
    ("wait \u2014 what\u2026", "wait - what."),
    ("caf\u00e9 na\u00efve Stra\u00dfe", "cafe naive Strasse"),
    ("  lots   of\tspace \n here ", "lots of space here"),
    ("Really?! Yes!!!", "Really? Yes!"),
    ("a -- b", "a - b"),
    ("co-worker", "co-worker"),
    ("2\u00bd cups", "two and one half cups"),
]


@pytest.mark.parametrize(("written", "spoken"), CASES)
def test_normalize_text(written: str, spoken: str) -> None:
    assert normalize_text(written) == spoken


def test_number_words() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(110) == "one hundred ten"
    assert number_to_words(2_000_017) == "two million seventeen"
    assert ordinal_words(12) == "twelfth"
    assert ordinal_words(40) == "fortieth"
    assert year_words(2010) == "twenty ten"
    assert year_words(2000) == "two thousand"


def test_asr_transcript() -> None:
    assert (
        asr_transcript("It's 22nd & 1984!")
        == "it's twenty second and nineteen eighty four"
    )
    assert asr_transcript("Dr. Smith's co-worker -- 'really'?") == (
        "doctor smith's co worker really"
    )
    assert asr_transcript("") == ""


def test_unsupported_characters_are_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = "Emoji \U0001f600 and \u041f\u0440\u0438\u0432\u0435\u0442 and \u4e2d\u6587."
    assert dropped_characters(text)[0] == "\U0001f600"
    assert "\u4e2d" in dropped_characters(text)
    assert dropped_characters("caf\u00e9") == []
    with caplog.at_level(logging.WARNING, logger="speech.text.normalize"):
        assert normalize_text(text) == "Emoji and and."
    assert "U+1F600" in caplog.text


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_arbitrary_unicode_never_raises(text: str) -> None:
    logging.disable(logging.WARNING)
    try:
        transcript = asr_transcript(text)
        normalized = normalize_text(text)
    finally:
        logging.disable(logging.NOTSET)
    assert re.fullmatch(r"(?:[a-z']+(?: [a-z']+)*)?", transcript)
    assert re.fullmatch(r"[A-Za-z' ,.?!;:-]*", normalized)
    assert asr_transcript(transcript) == transcript


def test_split_sentences_respects_abbreviations() -> None:
    text = (
        "Mr. Smith met Dr. Jones at 5 p.m. on Jan. 5. They talked about the "
        'U.S. Army! Was it fun? "Yes," he said. J. R. R. Tolkien wrote. '
        "No. 5 is here. It costs $3.50."
    )
    assert split_sentences(text) == [
        "Mr. Smith met Dr. Jones at 5 p.m. on Jan. 5.",
        "They talked about the U.S. Army!",
        "Was it fun?",
        '"Yes," he said.',
        "J. R. R. Tolkien wrote.",
        "No. 5 is here.",
        "It costs $3.50.",
    ]


def test_split_sentences_paragraphs_and_lines() -> None:
    assert split_sentences("One\n\nTwo without a period\nand more") == [
        "One",
        "Two without a period and more",
    ]
    assert split_sentences("  ") == []


def test_split_sentences_limits_length() -> None:
    long = (
        ("word " * 40) + ", " + ("other " * 30) + "; third part, and more " + "x" * 250
    )
    pieces = split_sentences(long, max_chars=100)
    assert all(len(p) <= 100 for p in pieces)
    assert "".join(long.split()) == "".join("".join(pieces).split())
    assert pieces[-1] == "x" * 50
    # cut at the comma before cutting between words
    assert split_sentences("a a a a, b b b b", max_chars=10) == ["a a a a,", "b b b b"]
    with pytest.raises(ValueError):
        split_sentences("x", max_chars=0)
