"""The error-position table of ``benchmarks/asr_edges.py``: which reference
words an alignment marks wrong, and their rates by position."""

from __future__ import annotations

import argparse
import importlib

import pytest


@pytest.fixture
def edges(monkeypatch):
    monkeypatch.syspath_prepend("benchmarks")
    return importlib.import_module("asr_edges")


def test_wrong_words_marks_substitutions_and_deletions(edges) -> None:
    assert edges.wrong_words("in the dark", "in the dar") == [False, False, True]
    assert edges.wrong_words("he is naked", "he naked") == [False, True, False]
    # an insertion marks no reference word
    assert edges.wrong_words("i get fat", "i get a fat") == [False, False, False]
    assert edges.wrong_words("i get fat", "") == [True, True, True]
    assert edges.wrong_words("", "anything") == []


def test_edge_table_rates_by_position(edges) -> None:
    pairs = [
        ("a", "in the dark", "in the dar"),
        ("a", "bring me my spears", "bring me my sp"),
        ("b", "go", "no"),  # a one-word sentence's word is its last
        ("b", "what does he care", "what does he care"),
    ]
    rows = {row["voice"]: row for row in edges.edge_table(pairs)}
    assert list(rows) == ["a", "b", "all"]
    assert rows["a"]["last words wrong %"] == 100.0
    assert rows["a"]["first words wrong %"] == 0.0
    assert rows["a"]["middle words wrong %"] == 0.0
    assert rows["a"]["WER %"] == pytest.approx(100 * 2 / 7)
    assert rows["b"]["last words wrong %"] == 50.0
    assert rows["all"]["last words wrong %"] == 75.0
    assert rows["all"]["words"] == 12


def test_pad_argument_is_checked(edges) -> None:
    assert edges.parse_pad("0.3:0.6") == (0.3, 0.6)
    for bad in ("0.3", "a:b", "-1:0"):
        with pytest.raises(argparse.ArgumentTypeError, match="BEFORE:AFTER|>= 0"):
            edges.parse_pad(bad)
