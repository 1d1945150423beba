"""``benchmarks/voice_vowels.py``: vowel formants and fricative peaks of
voices, read from their signal; a voice or accent that cannot be spoken is
reported in one line and left out."""

from __future__ import annotations

import importlib

import pytest


@pytest.fixture
def vowels(monkeypatch):
    monkeypatch.syspath_prepend("benchmarks")
    return importlib.import_module("voice_vowels")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_tables_show_the_raised_vowel_and_s_above_sh(vowels, capsys) -> None:
    vowels.main(
        [
            "--voices",
            "espeak:en-us+m1",
            "espeak:en-us+m1@raised-ae:I@:all",
            "espeak:en-us+nosuch",
            "espeak:en-us+m1@raised-ae:X:all",
        ]
    )
    captured = capsys.readouterr()
    assert "skipped espeak:en-us+nosuch:" in captured.err
    assert "skipped espeak:en-us+m1@raised-ae:X:all: accent" in captured.err
    vowel_part, fricative_part = captured.out.split("Fricatives")

    def table(text: str) -> dict[str, list[str]]:
        return {
            _cells(line)[0]: _cells(line)[1:]
            for line in text.splitlines()
            if line.startswith("| espeak")
        }

    formants, fricatives = table(vowel_part), table(fricative_part)
    assert (
        set(formants)
        == set(fricatives)
        == {
            "espeak:en-us+m1",
            "espeak:en-us+m1@raised-ae:I@:all",
        }
    )
    first = lambda cell: float(cell.split("/")[0])  # noqa: E731
    column = vowels.VOWEL_WORDS.index
    plain = formants["espeak:en-us+m1"]
    raised = formants["espeak:en-us+m1@raised-ae:I@:all"]
    # plain /æ/ is open, well above /ɪ/; raised, it sits where /ɪ/ does
    assert first(plain[column("had")]) > first(plain[column("hid")]) + 120
    assert abs(first(raised[column("had")]) - first(plain[column("hid")])) < 80
    # heed has the lowest F1 of the front vowels
    assert first(plain[column("heed")]) < first(plain[column("hid")])
    # the fricative table: /s/ above /sh/, peak and centroid
    peak, centroid = fricatives["espeak:en-us+m1"]
    for cell in (peak, centroid):
        s, sh = (float(v) for v in cell.split("/"))
        assert s > sh + 1000
