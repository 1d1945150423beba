"""Phoneme inventory and espeak-ng grapheme to phoneme through the wheel."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from speech.text import espeak
from speech.text.phonemize import (
    PAD_ID,
    PHONEME_SYMBOLS,
    PUNCTUATION,
    WORD_BOUNDARY,
    ids_to_symbols,
    phonemes_to_ids,
    text_to_ids,
    text_to_phonemes,
)

DOT = PHONEME_SYMBOLS.index(".")


def test_inventory_is_fixed_and_unique() -> None:
    assert PHONEME_SYMBOLS[PAD_ID] == "_"
    assert PHONEME_SYMBOLS[1] == WORD_BOUNDARY
    assert PHONEME_SYMBOLS[2 : 2 + len(PUNCTUATION)] == PUNCTUATION
    assert len(set(PHONEME_SYMBOLS)) == len(PHONEME_SYMBOLS)
    assert all(len(symbol) == 1 for symbol in PHONEME_SYMBOLS)


def test_hello_world_ends_with_the_period_token() -> None:
    ids = text_to_ids("Hello world.")
    assert ids and PAD_ID not in ids
    assert ids[-1] == DOT
    assert "".join(ids_to_symbols(ids)) == "həlˈoʊ wˈɜːld."


def test_punctuation_survives_as_pause_tokens() -> None:
    phonemes = text_to_phonemes("Hello, world! Are you there? Yes; fine: ok - bye.")
    marks = [c for c in phonemes if c in PUNCTUATION]
    assert marks == [",", "!", "?", ";", ":", "-", "."]


def test_numbers_are_read_as_words() -> None:
    assert text_to_phonemes("42") == text_to_phonemes("forty two")
    assert text_to_phonemes("$5") == text_to_phonemes("five dollars")


def test_phoneme_input_round_trips() -> None:
    phonemes = "həlˈoʊ, wˈɜːld. ðɪs ɪz ɐ tˈɛst?"
    ids = phonemes_to_ids(phonemes)
    assert "".join(ids_to_symbols(ids)) == phonemes
    # inline braces pass phonemes through, marks after "}" attach to them
    text = "Say {təmˈɑːtoʊ}, please."
    assert text_to_phonemes(text).startswith("sˈeɪ təmˈɑːtoʊ, ")
    assert text_to_phonemes(text).endswith(".")


def test_every_symbol_espeak_writes_for_english_is_known() -> None:
    sample = (
        "The quick brown fox jumps over the lazy dog while thirty three "
        "thousand zealous judges measure rhythm, vision and button-pushing."
    )
    for voice in ("en-us", "en", "en-gb-x-rp", "en-us-nyc"):
        ipa = espeak.text_to_ipa(sample, voice)
        assert set(ipa) <= set(PHONEME_SYMBOLS), set(ipa) - set(PHONEME_SYMBOLS)


def test_unknown_characters_and_emoji_do_not_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        ids = text_to_ids("Smile \U0001f600 \u4e2d\u6587 please")
        assert ids and PAD_ID not in ids
        assert phonemes_to_ids("hə\u2603lo") == phonemes_to_ids("həlo")
    assert "U+2603" in caplog.text
    assert text_to_ids("") == []
    assert text_to_ids("\U0001f600 ...") == []
    with pytest.raises(IndexError):
        ids_to_symbols([len(PHONEME_SYMBOLS)])


def test_binding_uses_the_wheel_library_and_is_thread_safe() -> None:
    library, data = espeak.library_paths()
    results: list[str] = []

    def work() -> None:
        for _ in range(5):
            results.append(espeak.text_to_ipa("button", "en-us"))
            espeak.synthesize("hi", "en+m3")

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results) == {"bˈʌʔn̩"}
    mapped = {
        Path(line.split()[-1]).resolve()
        for line in Path("/proc/self/maps").read_text().splitlines()
        if "libespeak-ng" in line
    }
    assert mapped == {library.resolve()}
    assert "espeakng_loader" in str(data)


def test_synthesize_and_voice_errors() -> None:
    samples, rate = espeak.synthesize("Testing one two three.", "en-us+f3", rate=200)
    assert rate == espeak.sample_rate() == 22050
    assert samples.dtype == np.int16 and 0.5 < len(samples) / rate < 3
    assert np.abs(samples).max() > 1000
    with pytest.raises(espeak.EspeakError):
        espeak.synthesize("x", "xx-nothing")
    with pytest.raises(espeak.EspeakError):
        espeak.synthesize("x", "en-us+nothing")
    assert "m3" in espeak.variants() and "en-us" in espeak.english_languages()
