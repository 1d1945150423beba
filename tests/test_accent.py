"""A raised /æ/ spoken by espeak-ng from phoneme input (recipes.data.accent)."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path

import librosa
import numpy as np
import pytest

from recipes.data.accent import Accent, AccentError, accent_text, raise_ae
from recipes.data.build_corpus import CorpusConfig, plan_jobs
from recipes.data.layouts import PathPlanner
from recipes.data.sentences import prepare_sentences
from recipes.data.voices import Voice, speak
from speech.text import espeak

NO_SET_ASIDE = (0, 0)  # a short text: set aside only what the counts read


@pytest.fixture
def first_formant(monkeypatch):
    """Median F1 (Hz) over the middle third of a word's loud 25 ms frames at
    10 kHz, each read by ``benchmarks/voice_vowels.py``'s LPC (its own
    windowing, the longest voiced stretch, moves with espeak-ng's small
    run-to-run differences on these short clips)."""
    monkeypatch.syspath_prepend("benchmarks")
    resonances = importlib.import_module("voice_vowels").resonances

    def measure(samples: np.ndarray, rate: int) -> float:
        x = librosa.resample(
            np.asarray(samples, np.float32), orig_sr=rate, target_sr=10000
        )
        frames = librosa.util.frame(x, frame_length=250, hop_length=100).T
        energy = (frames**2).mean(axis=1)
        loud = np.flatnonzero(energy > 0.2 * energy.max())
        middle = loud[len(loud) // 3 : 2 * len(loud) // 3 + 1]
        values = [hz[0] for hz in map(resonances, frames[middle]) if len(hz)]
        return float(np.median(values))

    return measure


def test_only_ae_is_replaced() -> None:
    # can't stand that man, laughing, I, out, again, had
    phonemes = "k'ant st'and Dat m'an l'aafIN aI 'aUt a#g'En h'ad"
    assert raise_ae(phonemes, "I@", "all") == (
        "k'I@nt st'I@nd DI@t m'I@n l'aafIN aI 'aUt a#g'En h'I@d",
        5,
    )
    # the nasal system raises /æ/ before /n/ and /m/ only (not before /ŋ/)
    assert raise_ae(phonemes + " s'aN", "e@", "nasal") == (
        "k'e@nt st'e@nd Dat m'e@n l'aafIN aI 'aUt a#g'En h'ad s'aN",
        3,
    )
    assert raise_ae("aI@ aU@ aI2 a2 aa", "e@", "all") == ("aI@ aU@ aI2 a2 aa", 0)


def test_accent_specs_and_their_errors() -> None:
    assert Accent.parse("raised-ae:e@:nasal") == Accent("e@", "nasal")
    assert Accent.parse("raised-ae:I@:all").spec == "raised-ae:I@:all"
    for spec, words in [
        ("lowered-ae:e@:all", "unknown accent"),
        ("raised-ae:E:all", "vowel must be one of e@, I@"),
        ("raised-ae:e@:some", "system must be one of nasal, all"),
    ]:
        with pytest.raises(AccentError, match=words):
            Accent.parse(spec)
    with pytest.raises(AccentError, match="needs an espeak-ng voice"):
        speak(Voice.parse("flite:slt"), "A cat.", 175, 50, accent="raised-ae:e@:all")


def test_phoneme_input_speaks_like_the_text() -> None:
    text = "Into love and out again, thus I went; and thus I go?"
    clauses = espeak.text_to_mnemonics(text, "en-us+m1")
    assert [mark for _, mark in clauses] == [",", ";", "?"]
    assert "a#g'En" in clauses[0][0]
    plain, rate = espeak.synthesize(text, "en-us+m1")
    phonemes = " ".join(f"[[{p}]]{mark}" for p, mark in clauses)
    again, _ = espeak.synthesize(phonemes, "en-us+m1", phoneme_input=True)
    assert abs(len(again) - len(plain)) < 0.03 * len(plain)
    # without phoneme input the brackets and mnemonics are read as text
    literal, _ = espeak.synthesize(phonemes, "en-us+m1")
    assert len(literal) > 1.3 * len(plain)


def test_raised_ae_brings_f1_down_to_that_of_i(first_formant) -> None:
    voice = Voice.parse("espeak:en-us+m1")
    had, rate = speak(voice, "had", 150, 50)
    hid, _ = speak(voice, "hid", 150, 50)
    raised, _ = speak(voice, "had", 150, 50, accent="raised-ae:I@:all")
    f1_had, f1_hid, f1_raised = (first_formant(x, rate) for x in (had, hid, raised))
    assert f1_had > f1_hid + 120  # espeak-ng's own /æ/ is open
    assert abs(f1_raised - f1_hid) < 80  # raised, it sits where /ɪ/ does
    # the nasal system leaves "had" alone and raises "man"
    nasal_had, _ = speak(voice, "had", 150, 50, accent="raised-ae:I@:nasal")
    assert abs(first_formant(nasal_had, rate) - f1_had) < 40
    man, _ = speak(voice, "man", 150, 50)
    nasal_man, _ = speak(voice, "man", 150, 50, accent="raised-ae:I@:nasal")
    assert first_formant(nasal_man, rate) < first_formant(man, rate) - 100
    text, count = accent_text("The man had a cat.", "en-us", Accent("I@", "nasal"))
    assert count == 1 and text.startswith("[[") and text.endswith("]].")


def test_plan_gives_accents_to_espeak_training_utterances_only() -> None:
    sentences = prepare_sentences(
        [f"Sentence number {n} is about a cat and a man." for n in range(30)]
    )
    train = [Voice.parse("flite:slt"), Voice.parse("espeak:en-us+m1")]
    heldout = [Voice.parse("espeak:en-us+f4")]
    config = CorpusConfig(
        out=Path("unused"),
        held_out_sentences=NO_SET_ASIDE,
        train_utts=200,
        dev_utts=4,
        test_utts=4,
    )

    def plan(config: CorpusConfig) -> list:
        planner = PathPlanner("flat", [v.spec for v in train + heldout])
        return plan_jobs(sentences, train, heldout, config, planner)[0]

    before = plan(config)
    after = plan(replace(config, raised_ae_fraction=0.5))
    assert all(job.accent == "" for job in before)
    accented = [job for job in after if job.accent]
    espeak_train = [
        j for j in after if j.split == "train" and j.voice.startswith("espeak:")
    ]
    assert accented and set(accented) <= set(espeak_train)
    assert 0.35 < len(accented) / len(espeak_train) < 0.65
    assert {j.accent for j in accented} == {
        f"raised-ae:{v}:{s}" for v in ("e@", "I@") for s in ("nasal", "all")
    }
    # the option changes nothing else of the deal
    assert [replace(j, accent="") for j in after] == before
