"""Corpus builder: sentence cleaning, planning, and a small end-to-end build."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recipes.data.audio import read_wav, resample, trim_silence
from recipes.data.build_corpus import CorpusConfig, build_corpus, plan_jobs
from recipes.data.layouts import PathPlanner
from recipes.data.sentences import (
    fortune_sentences,
    load_sentences,
    prepare_sentences,
    shuffled,
    wordnet_sentences,
)
from recipes.data.voices import (
    DEFAULT_HELDOUT_VOICES,
    Voice,
    VoiceError,
    check_voice,
    default_training_voices,
    pico_markup,
    speak,
)
from speech.text.normalize import asr_transcript

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite")

# the texts here are a few sentences: set aside only what the counts read
NO_SET_ASIDE = (0, 0)

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "It cost $5 on Jan. 5, 2020.",
    "She sells sea shells by the sea shore.",
    "A journey of 1000 miles begins with a single step.",
    "Never put off until tomorrow what you can do today.",
    "Dr. Smith lives on Elm St. with 3 cats.",
    "Look before you leap, said the old man.",
    "Every cloud has a silver lining.",
]


def wav_info(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as file:
        frames = file.getnframes()
        rate = file.getframerate()
        return rate, file.getnchannels(), file.getsampwidth(), frames / rate


def sentences_file(tmp_path: Path) -> Path:
    """SENTENCES as a text file, one per line."""
    text_file = tmp_path / "sentences.txt"
    text_file.write_text("\n".join(SENTENCES) + "\n")
    return text_file


def plan_config(train_utts: int, dev_utts: int, test_utts: int) -> CorpusConfig:
    """A configuration to plan (nothing is built) from SENTENCES' few lines."""
    return CorpusConfig(
        out=Path("unused"),
        held_out_sentences=NO_SET_ASIDE,
        train_utts=train_utts,
        dev_utts=dev_utts,
        test_utts=test_utts,
    )


def build_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m recipes.data.build_corpus ARGS`` as a user runs it, with
    nothing set aside beyond the utterance counts (the texts here are short)
    unless ARGS set ``--held-out-sentences``."""
    if "--held-out-sentences" not in args:
        args = (*args, "--held-out-sentences", "0", "0")
    return subprocess.run(
        [sys.executable, "-m", "recipes.data.build_corpus", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def small_corpus(tmp_path: Path, **settings: object) -> tuple[dict, list[str]]:
    """Build a tiny corpus of SENTENCES with the default training voices and
    flite:awb held out; its summary and the training speakers."""
    text_file = sentences_file(tmp_path)
    config = CorpusConfig(
        held_out_sentences=NO_SET_ASIDE,
        out=tmp_path / "corpus",
        heldout_voices=("flite:awb",),
        dev_utts=0,
        test_utts=1,
        text_file=text_file,
        jobs=2,
        **settings,
    )
    summary = build_corpus(config)
    speakers = [
        json.loads(line)["speaker"]
        for line in (config.out / "train.jsonl").read_text().splitlines()
    ]
    return summary, speakers


def test_fortune_cleaning(tmp_path: Path) -> None:
    root = tmp_path / "fortunes"
    (root / "off").mkdir(parents=True)
    (root / "off" / "rude").write_text("A rude sentence that must not appear.\n%\n")
    (root / "wise").write_text(
        "Wise men talk because they have something to say.\n"
        "\t\t-- Plato\n%\n"
        "Q: Why did the chicken cross the road?\n"
        "A: To get to the other side.\n%\n"
        "  int main() { return 0; }\n%\n"
        "See http://example.com for details.\n%\n"
        "NASA launched it again.  I said hmm quietly.  Short.\n%\n"
        "Wise men talk because they have something to say!\n%\n"
        "Rules: (1) Time flies like an arrow.\n%\n"
        "2. adj.: Broken in 2 pieces.\n%\n"
    )
    (root / "wise.dat").write_bytes(b"\x00\x01binary")
    sentences = prepare_sentences(fortune_sentences(root))
    assert [s.raw for s in sentences] == [
        "Wise men talk because they have something to say.",
        "Why did the chicken cross the road?",
        "To get to the other side.",
        "Time flies like an arrow.",
    ]
    numbers = prepare_sentences(["I was born in 1984, at 3:30 pm."])
    assert numbers[0].text == "I was born in nineteen eighty four, at three thirty p m."
    assert shuffled(sentences, 1) == shuffled(sentences, 1)


def test_wordnet_glosses_become_sentences(tmp_path: Path) -> None:
    root = tmp_path / "wordnet"
    root.mkdir()
    header = "  1 This software and database is being provided to you\n"
    (root / "data.noun").write_text(
        header + "02084071 05 n 01 dog 0 001 @ 02083346 n 0000 | a member of the genus "
        'Canis that has been domesticated by man; "the dog barked all night"\n'
        "02121620 05 n 01 cat 0 000 | feline mammal usually having thick soft fur; "
        '"the cat sat; then it slept"; "NASA cats"\n'
    )
    (root / "data.verb").write_text(
        header + "01926311 38 v 01 run 0 000 | move fast by using one's feet; \"Don't "
        "run--you'll be late\"\n"
    )
    (root / "data.adj").write_text(header)
    (root / "data.adv").write_text(header)
    raw = list(wordnet_sentences(root))
    assert raw == [
        "A member of the genus Canis that has been domesticated by man.",
        "The dog barked all night.",
        "Feline mammal usually having thick soft fur.",
        "The cat sat; then it slept.",  # a semicolon inside quotes stays
        "NASA cats.",
        "Move fast by using one's feet.",
        "Don't run--you'll be late.",
    ]
    kept = [s.raw for s in prepare_sentences(raw)]
    assert "NASA cats." not in kept  # spelled-out capitals are filtered as ever
    assert "The dog barked all night." in kept
    # the command line writes them gzipped, and corpora read them back
    out = tmp_path / "wordnet.txt.gz"
    result = subprocess.run(
        [sys.executable, "-m", "recipes.data.sentences", "--source", "wordnet",
         "--wordnet-dir", str(root), "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [s.raw for s in load_sentences(out)] == kept
    (root / "data.adv").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "recipes.data.sentences", "--source", "wordnet",
         "--wordnet-dir", str(root), "--out", str(tmp_path / "x.txt")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert "data.adv not found: install the wordnet-base package" in result.stderr
    assert not (tmp_path / "x.txt").exists()
    # a broken extra text file stops the build with one line naming it
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(b"not gzip")
    result = build_cli(
        "--out", str(tmp_path / "c"), "--text-file", str(out), "--extra-train-text",
        str(broken), "--voices", "espeak:en-us+m1", "--heldout-voices",
        "espeak:en+m1", "--train-utts", "2", "--dev-utts", "0", "--test-utts", "1",
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {broken}: not a readable text file")
    )


def test_extra_training_text_never_reaches_dev_or_test() -> None:
    sentences = prepare_sentences(SENTENCES)
    extra = prepare_sentences(
        [f"Extra sentence number {w} is here." for w in ("one", "two", "three")]
        + [SENTENCES[0], SENTENCES[2]]  # also in the main text
    )
    train = [Voice.parse("flite:slt"), Voice.parse("espeak:en-us+m1")]
    heldout = [Voice.parse("flite:awb")]
    config = plan_config(20, 2, 2)
    planner = PathPlanner("flat", [v.spec for v in train + heldout])
    plain = plan_jobs(sentences, train, heldout, config, planner)[0]
    jobs = plan_jobs(sentences, train, heldout, config, planner, extra)[0]
    assert [j for j in jobs if j.split != "train"] == [
        j for j in plain if j.split != "train"
    ]
    main_train = {j.text for j in plain if j.split == "train"}
    texts = [j.text for j in jobs if j.split == "train"]
    assert len(texts) == 20
    # the four main training sentences come first, then the three new ones,
    # each read once before any is read again; repeats of the main text and
    # of held-out sentences are dropped
    assert set(texts[:4]) == main_train
    assert {t for t in texts[4:7]} == {s.text for s in extra[:3]}
    held = {j.text for j in jobs if j.split != "train"}
    assert not set(texts) & held
    assert set(texts) == main_train | {s.text for s in extra[:3]}


def length_and_f0(
    voice: Voice, rate: int, pitch: int, fmin: float = 60
) -> tuple[float, float]:
    """Seconds and median F0 (pYIN) of SENTENCES[0] read by a 16 kHz voice."""
    import librosa

    samples, sample_rate = speak(voice, SENTENCES[0], rate, pitch)
    assert sample_rate == 16000
    f0, _, _ = librosa.pyin(samples, fmin=fmin, fmax=400, sr=sample_rate)
    return len(samples) / sample_rate, float(np.nanmedian(f0))


def assert_opts_in(tmp_path: Path, engine: str) -> None:
    """A corpus with ``--{engine}-fraction 0.4`` gives the engine 4 of its 10
    training utterances."""
    summary, speakers = small_corpus(
        tmp_path,
        train_utts=10,
        flite_fraction=0.2,
        festival_fraction=0.0,
        **{f"{engine}_fraction": 0.4},
    )
    assert sum(s.startswith(f"{engine}:") for s in speakers) == 4
    assert summary["engines"][engine]["utterances"] == 4


def test_pico_voices(tmp_path: Path) -> None:
    markup = pico_markup("Fish & chips <now>", 210, 70)
    assert markup == (
        '<speed level="120"><pitch level="126">Fish   chips  now </pitch></speed>'
    )
    assert pico_markup("Hello there.", 175, 50) == (
        '<speed level="100"><pitch level="100">Hello there.</pitch></speed>'
    )
    voice = Voice.parse("pico:en-US")
    if shutil.which("pico2wave") is None:  # Debian non-free, not installed here
        with pytest.raises(VoiceError, match="pico2wave program is not on PATH"):
            check_voice(voice)
        return
    check_voice(voice)
    check_voice(Voice.parse("pico:en-GB"))
    with pytest.raises(VoiceError, match="has no voice"):
        check_voice(Voice.parse("pico:xx-XX"))

    (own_length, own_f0), (fast, high) = (
        length_and_f0(voice, 175, 50),
        length_and_f0(voice, 210, 70),
    )
    assert 140 < own_f0 < 200  # a woman's voice
    assert 0.75 < fast / own_length < 0.92 and 1.15 < high / own_f0 < 1.4
    assert_opts_in(tmp_path, "pico")


def test_mbrola_voices(tmp_path: Path) -> None:
    voice = Voice.parse("mbrola:us2")
    with pytest.raises(VoiceError, match="not a Festival voice name"):
        Voice.parse('mbrola:us2") (system "true')  # the name goes into Scheme
    if shutil.which("mbrola") is None:  # Debian contrib/non-free, not installed
        with pytest.raises(VoiceError, match="mbrola program is not on PATH"):
            check_voice(voice)
        return
    for name in ("us1", "us2", "us3", "en1"):
        check_voice(Voice.parse(f"mbrola:{name}"))
    with pytest.raises(VoiceError, match="mbrola has no voice 'xx9'"):
        check_voice(Voice.parse("mbrola:xx9"))

    (own_length, own_f0), (fast, high) = (
        length_and_f0(voice, 175, 50, fmin=50),
        length_and_f0(voice, 210, 70, fmin=50),
    )
    assert 70 < own_f0 < 120  # us2 is a man
    assert 0.7 < fast / own_length < 0.92 and 1.15 < high / own_f0 < 1.45
    assert_opts_in(tmp_path, "mbrola")


def test_voices_and_defaults() -> None:
    heldout = [Voice.parse(s) for s in DEFAULT_HELDOUT_VOICES]
    training = default_training_voices(heldout)
    held_variants = {v.variant for v in heldout if v.variant}
    assert not set(training) & set(heldout)
    assert not {v.variant for v in training} & held_variants
    for voice in heldout + training[:3]:
        check_voice(voice)
    assert {v.spec for v in training if v.engine == "festival"} == {
        "festival:ked_diphone",
        "festival:kal_diphone",
        "festival:cmu_us_slt_arctic_hts",
    }
    for voice in training:
        if voice.engine == "festival":
            check_voice(voice)
    for bad in ("flite:nosuch", "espeak:en-us+nosuch", "festival:nosuch"):
        with pytest.raises(VoiceError, match="has no voice"):
            check_voice(Voice.parse(bad))
    for bad in ("other:x", "slt", "festival:x)(quit"):
        with pytest.raises(VoiceError, match="voice '"):
            Voice.parse(bad)


def test_flite_pitch_moves_the_voice_f0() -> None:
    slt = Voice.parse("flite:slt")
    low, own, high = (length_and_f0(slt, 175, pitch)[1] for pitch in (30, 50, 70))
    assert 150 < own < 195  # pitch 50 keeps slt's own F0 (about 170 Hz)
    assert 0.72 < low / own < 0.86 and 1.16 < high / own < 1.36


def test_festival_voices_follow_rate_and_pitch() -> None:
    ked = Voice.parse("festival:ked_diphone")
    (own_seconds, own_f0), (_, low_f0), (_, high_f0) = (
        length_and_f0(ked, 175, pitch, fmin=50) for pitch in (50, 30, 70)
    )
    assert 85 < own_f0 < 125  # ked's own targets: about 105 Hz
    # the diphone resynthesis goes less far down than asked (0.87 for 0.79)
    assert 0.78 < low_f0 / own_f0 < 0.92 and 1.16 < high_f0 / own_f0 < 1.36
    fast_seconds, _ = length_and_f0(ked, 210, 50, fmin=50)
    assert 0.75 < fast_seconds / own_seconds < 0.9  # 175/210 = 0.83

    hts = Voice.parse("festival:cmu_us_slt_arctic_hts")
    samples, sample_rate = speak(hts, SENTENCES[0], 175, 50)
    fast, _ = speak(hts, SENTENCES[0], 210, 50)
    assert sample_rate == 32000
    assert 0.75 < len(fast) / len(samples) < 0.9
    # text is passed as data, never as Scheme: quotes and brackets are read out
    odd, _ = speak(ked, 'He said "(quit)" and a back\\slash.', 175, 50)
    assert len(odd) / 16000 > 1.0


def test_one_festival_process_speaks_like_one_run_per_utterance(
    tmp_path: Path,
) -> None:
    from recipes.data import voices

    # voices and prosodies in turn: nothing one utterance sets leaks into the
    # next, so the long-lived process writes exactly what `festival -b` does
    turns = [
        ("kal_diphone", 150, 30),
        ("cmu_us_slt_arctic_hts", 140, 50),
        ("ked_diphone", 200, 70),
        ("kal_diphone", 175, 50),
        ("cmu_us_slt_arctic_hts", 200, 60),
        ("ked_diphone", 175, 50),
    ]
    process = voices.FestivalProcess()
    try:
        for name, rate, pitch in turns:
            samples, sample_rate = process.speak(SENTENCES[1], name, rate, pitch)
            wav = tmp_path / f"{name}-{rate}-{pitch}.wav"
            synthesis = (
                "(utt.save.wave (utt.synth (Utterance Text "
                f"{voices.scheme_string(SENTENCES[1])})) "
                f"{voices.scheme_string(str(wav))} 'riff)"
            )
            settings = voices.festival_settings(name, rate, pitch)
            subprocess.run(["festival", "-b", *settings, synthesis], check=True)
            once, once_rate = read_wav(wav)
            assert sample_rate == once_rate
            np.testing.assert_array_equal(samples, once)
        # a dead process is reported and replaced
        assert process._proc is not None
        process._proc.kill()
        process._proc.wait()
        again, _ = process.speak(SENTENCES[1], "kal_diphone", 175, 50)
        assert len(again) > 16000
        # an unknown voice fails this utterance with a clear error, not the
        # ones after it
        with pytest.raises(RuntimeError, match="festival failed"):
            process.speak(SENTENCES[1], "no_such_voice", 175, 50)
        assert len(process.speak(SENTENCES[1], "ked_diphone", 175, 50)[0]) > 16000
    finally:
        process.close()


def test_engine_shares(tmp_path: Path) -> None:
    sentences = prepare_sentences(SENTENCES)
    train = [
        Voice.parse(s) for s in ("flite:slt", "festival:ked_diphone", "espeak:en-us+m1")
    ]
    config = plan_config(20, 0, 1)
    planner = PathPlanner("flat", [v.spec for v in train] + ["flite:awb"])
    jobs = plan_jobs(sentences, train, [Voice.parse("flite:awb")], config, planner)[0]
    engines = [j.voice.partition(":")[0] for j in jobs if j.split == "train"]
    # flite 40 %, Festival 15 %, espeak-ng the rest
    assert [engines.count(e) for e in ("flite", "festival", "espeak")] == [8, 3, 9]
    # Pico voices join the default training voices only when asked for
    defaults = {v.spec for v in default_training_voices([])}
    assert {"pico:en-US", "mbrola:us2"} <= defaults
    result = build_cli(
        "--out", str(tmp_path), "--flite-fraction", "0.5",
        "--festival-fraction", "0.2", "--mbrola-fraction", "0.4",
    )  # fmt: skip
    assert result.returncode == 2
    assert "must be >= 0 and sum to <= 1" in result.stderr


def test_default_voices_skip_an_engine_that_is_not_installed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recipes.data.voices as voices

    def no_festival() -> frozenset[str]:
        raise VoiceError("the festival program is not on PATH")

    monkeypatch.setattr(voices, "_festival_voices", no_festival)
    with caplog.at_level(logging.WARNING):
        summary, speakers = small_corpus(tmp_path, train_utts=5)
    assert "festival:ked_diphone: the festival program is not on PATH" in caplog.text
    assert summary["failed"] == 0 and summary["counts"]["train"] == 5
    assert not [s for s in speakers if s.startswith("festival:")]
    # Pico and MBROLA are opt-in (--pico-fraction, --mbrola-fraction): the
    # default voices leave them out even where they are installed
    assert not [s for s in speakers if s.startswith(("pico:", "mbrola:"))]
    # the flite share (40 %) stays; espeak-ng takes Festival's
    assert sum(s.startswith("flite:") for s in speakers) == 2


def test_audio_helpers() -> None:
    rate = 22050
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
    padded = np.concatenate([np.zeros(rate), tone, np.zeros(rate // 2)]).astype(
        np.float32
    )
    trimmed = trim_silence(padded, rate, keep_seconds=0.05)
    assert abs(len(trimmed) / rate - 1.1) < 0.02
    converted = resample(tone, rate, 16000)
    assert len(converted) == 16000
    assert abs(np.sqrt(np.mean(converted[100:-100] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_set_aside_sentences_stay_out_of_training_whatever_the_counts(
    tmp_path: Path,
) -> None:
    """A training build that reads fewer test or dev utterances than the
    evaluation build (on the GPU machine ``--test-utts 200`` against 800;
    here 3 or 0 against 10) must still train on none of the evaluation
    build's test and dev sentences, and tune voices read the evaluation
    build's dev sentences; a text too short for the set-aside is refused in
    one line."""
    sentences = prepare_sentences(
        [f"Sentence number {i} reads few words." for i in range(60)]
    )
    train = [Voice.parse("flite:slt"), Voice.parse("espeak:en-us+m1")]
    heldout = [Voice.parse("flite:awb")]
    tune = [Voice.parse("flite:kal")]
    planner = PathPlanner("flat", [v.spec for v in train + heldout + tune])

    def texts(config: CorpusConfig) -> dict[str, list[str]]:
        tuned = tune if config.dev_utts else []  # tune voices read the dev sentences
        jobs = plan_jobs(sentences, train, heldout, config, planner, (), tuned)[0]
        return {
            split: [j.text for j in jobs if j.split == split]
            for split in ("train", "dev", "test", "tune")
        }

    base = CorpusConfig(
        out=Path("unused"), train_utts=0, test_utts=10, dev_utts=6,
        held_out_sentences=(10, 6),
    )  # fmt: skip
    evaluation = texts(base)
    held = set(evaluation["test"]) | set(evaluation["dev"])
    assert len(evaluation["test"]) == 10 and len(evaluation["dev"]) == 6
    for test_utts, dev_utts in ((3, 6), (0, 2), (10, 0)):
        build = texts(
            replace(base, train_utts=200, test_utts=test_utts, dev_utts=dev_utts)
        )
        assert len(build["train"]) == 200 and not set(build["train"]) & held
        assert build["test"] == evaluation["test"][:test_utts]
        assert build["dev"] == evaluation["dev"][:dev_utts]
        assert build["tune"] == evaluation["dev"][:dev_utts]
    # the old split (the counts only) trained on the evaluation build's test
    # sentences; that is what the set-aside prevents
    old = texts(replace(base, train_utts=200, test_utts=3, held_out_sentences=(0, 0)))
    assert set(old["train"]) & set(evaluation["test"])
    # reading more than is set aside widens the set-aside
    wide = texts(replace(base, train_utts=200, test_utts=12))
    assert wide["test"][:10] == evaluation["test"]
    assert not set(wide["train"]) & (set(wide["test"]) | set(wide["dev"]))
    with pytest.raises(ValueError, match="the text has 60 sentences, fewer than"):
        texts(replace(base, held_out_sentences=(50, 20)))
    result = build_cli(
        "--out", str(tmp_path / "short"), "--text-file", str(sentences_file(tmp_path)),
        "--train-utts", "2", "--test-utts", "1", "--held-out-sentences", "800", "500",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the text has 8 sentences, fewer than the 800 test and 500 dev "
        "sentences to set aside (--held-out-sentences, --test-utts, --dev-utts)"
    )
    assert not (tmp_path / "short" / "train.jsonl").exists()


def test_plan_is_deterministic_and_splits_are_disjoint() -> None:
    sentences = prepare_sentences(SENTENCES)
    train = [Voice.parse("flite:slt"), Voice.parse("espeak:en-us+m1")]
    heldout = [Voice.parse("flite:awb")]
    config = plan_config(10, 2, 2)

    def plan() -> list:
        planner = PathPlanner("flat", [v.spec for v in train + heldout])
        return plan_jobs(sentences, train, heldout, config, planner)[0]

    jobs = plan()
    assert jobs == plan()
    by_split = {s: [j for j in jobs if j.split == s] for s in ("train", "dev", "test")}
    assert [len(v) for v in by_split.values()] == [10, 2, 2]
    texts = {s: {j.text for j in v} for s, v in by_split.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["dev"]
    assert {j.voice for j in by_split["test"]} == {"flite:awb"}
    # 40% of training utterances go to the one flite voice
    assert sum(j.voice == "flite:slt" for j in by_split["train"]) == 4
    assert all(130 <= j.rate <= 210 and 30 <= j.pitch <= 70 for j in jobs)
    # a new draw deals voices and prosody afresh over the same training
    # sentences and leaves dev and test exactly as they were
    config = replace(config, train_utts=40)
    before = plan()
    config = replace(config, draw=1)
    after = plan()
    assert [j for j in after if j.split != "train"] == [
        j for j in before if j.split != "train"
    ]
    train_before = [j for j in before if j.split == "train"]
    train_after = [j for j in after if j.split == "train"]
    assert [j.text for j in train_after] == [j.text for j in train_before]
    assert [(j.voice, j.rate, j.pitch) for j in train_after] != [
        (j.voice, j.rate, j.pitch) for j in train_before
    ]
    assert sum(j.voice == "flite:slt" for j in train_after) == 16


def test_build_corpus_end_to_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text_file = sentences_file(tmp_path)
    out = tmp_path / "corpus"
    config = CorpusConfig(
        held_out_sentences=NO_SET_ASIDE,
        out=out,
        voices=(
            "flite:slt",
            "flite:kal16",
            "festival:cmu_us_slt_arctic_hts",  # 32 kHz: resampled to 16 kHz
            "espeak:en-us+m1",
            "flite:nosuch",
        ),
        heldout_voices=("flite:awb", "espeak:en-gb-scotland+m3"),
        train_utts=6,
        dev_utts=1,
        test_utts=2,
        layout="librispeech",
        text_file=text_file,
        jobs=2,
    )
    with caplog.at_level(logging.WARNING):
        summary = build_corpus(config)
    assert "flite:nosuch" in caplog.text and "no voice 'nosuch'" in caplog.text
    assert summary["counts"] == {"train": 6, "dev": 1, "test": 2}
    assert summary["failed"] == 0
    assert summary["engines"]["festival"]["utterances"] >= 1

    rows = {
        split: [
            json.loads(line)
            for line in (out / f"{split}.jsonl").read_text().splitlines()
        ]
        for split in ("train", "dev", "test")
    }
    heldout = set(config.heldout_voices)
    for split, split_rows in rows.items():
        for row in split_rows:
            assert set(row) == {"audio", "duration", "text", "speaker"}
            rate, channels, width, seconds = wav_info(out / row["audio"])
            assert (rate, channels, width) == (16000, 1, 2)
            assert abs(seconds - row["duration"]) < 1e-3
            assert 0.5 < seconds < 10
            assert (row["speaker"] in heldout) == (split == "test")
    train_texts = {r["text"] for r in rows["train"]}
    assert not train_texts & {r["text"] for r in rows["test"] + rows["dev"]}

    # silence at both ends trimmed to at most 0.1 s
    samples, rate = read_wav(out / rows["test"][0]["audio"])
    kept = trim_silence(samples, rate, keep_seconds=0.0)
    assert len(samples) - len(kept) <= 0.2 * rate

    # LibriSpeech layout: transcripts match the manifests
    transcripts = {}
    for path in out.rglob("*.trans.txt"):
        for line in path.read_text().splitlines():
            utterance, _, words = line.partition(" ")
            transcripts[utterance] = words
    for row in rows["train"] + rows["dev"] + rows["test"]:
        stem = Path(row["audio"]).stem
        assert transcripts[stem] == asr_transcript(row["text"]).upper()
    speakers = (out / "SPEAKERS.TXT").read_text()
    assert "flite:awb" in speakers and "nosuch" not in speakers


def test_ljspeech_layout_and_long_form(tmp_path: Path) -> None:
    text_file = sentences_file(tmp_path)
    out = tmp_path / "tts"
    config = CorpusConfig(
        held_out_sentences=NO_SET_ASIDE,
        out=out,
        voices=("espeak:en-us+f3",),
        heldout_voices=("espeak:en-us+f4",),
        train_utts=3,
        dev_utts=1,
        test_utts=2,
        sample_rate=0,
        layout="ljspeech",
        prosody="fixed",
        long_form=1,
        long_form_minutes=0.15,
        text_file=text_file,
        jobs=1,
    )
    build_corpus(config)
    lines = (out / "metadata.csv").read_text().splitlines()
    assert len(lines) == 3
    item_id, raw, normalized = lines[0].split("|")
    assert (out / "wavs" / f"{item_id}.wav").is_file()
    assert wav_info(out / "wavs" / f"{item_id}.wav")[0] == 22050
    assert normalized.strip() and raw.strip()

    (row,) = [json.loads(x) for x in (out / "longform.jsonl").read_text().splitlines()]
    rate, _, _, seconds = wav_info(out / row["audio"])
    assert seconds >= 0.15 * 60 and abs(seconds - row["duration"]) < 1e-3
    assert row["speaker"] == "espeak:en-us+f4"
    segments = row["segments"]
    assert row["text"] == " ".join(s["text"] for s in segments)
    gaps = [b["start"] - a["end"] for a, b in zip(segments, segments[1:], strict=False)]
    assert all(0.29 <= gap <= 1.51 for gap in gaps)
    assert not (out / "longform" / "segments").exists()


def test_builder_needs_no_soundfile_librosa_soxr_or_torch(tmp_path: Path) -> None:
    """The GPU machine has none of soundfile, librosa, soxr; torch is not needed."""
    text_file = sentences_file(tmp_path)
    code = f"""
import sys
for name in ("soundfile", "librosa", "soxr"):
    sys.modules[name] = None  # importing them now fails
from recipes.data.build_corpus import main
main(["--out", {str(tmp_path / "out")!r}, "--text-file", {str(text_file)!r},
      "--voices", "espeak:en-us+m1", "--heldout-voices", "espeak:en-us+f4",
      "--train-utts", "2", "--dev-utts", "1", "--test-utts", "1", "--jobs", "1",
      "--held-out-sentences", "0", "0"])
assert "torch" not in sys.modules, "torch was imported"
"""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((tmp_path / "out" / "train.jsonl").read_text().splitlines()) == 2


def test_parallel_normalisation_keeps_order_and_first_occurrences(monkeypatch):
    import recipes.data.sentences as sentences_module

    raw = []
    for i in range(120):
        raw += [
            f"I was born in {1900 + i}, at {i % 12 + 1}:30 pm.",
            "The cat sat on the mat today.",  # repeated across every chunk
            "",
            "NASA cats.",  # not speakable
            f"Chapter {i} begins with {i * 7} quiet words here.",
        ]
    one = prepare_sentences(raw)
    monkeypatch.setattr(sentences_module, "PARALLEL_MIN_SENTENCES", 10)
    two = prepare_sentences(raw, jobs=3)
    assert two == one
    assert [s.raw for s in one].count("The cat sat on the mat today.") == 1
    assert len(one) == 1 + 2 * 120


def test_extra_fraction_sets_the_share_of_extra_sentences() -> None:
    sentences = prepare_sentences(SENTENCES)
    extra = prepare_sentences(
        [f"Extra sentence number {w} is here." for w in ("one", "two", "three")]
    )
    train = [Voice.parse("flite:slt"), Voice.parse("espeak:en-us+m1")]
    heldout = [Voice.parse("flite:awb")]
    planner = PathPlanner("flat", [v.spec for v in train + heldout])
    extra_texts = {s.text for s in extra}

    def split_texts(fraction: float, draw: int = 0, held: bool = False) -> list[str]:
        """The training texts, or with ``held`` those of dev and test."""
        config = CorpusConfig(
            held_out_sentences=NO_SET_ASIDE,
            out=Path("unused"),
            train_utts=40,
            dev_utts=2,
            test_utts=2,
            extra_fraction=fraction,
            draw=draw,
        )
        jobs = plan_jobs(sentences, train, heldout, config, planner, extra)[0]
        return [j.text for j in jobs if (j.split != "train") == held]

    for fraction in (0.0, 0.25, 1.0):
        texts = split_texts(fraction)
        assert len(texts) == 40
        assert sum(t in extra_texts for t in texts) == round(40 * fraction)
    # both pools are read through, mixed rather than one after the other
    texts = split_texts(0.25)
    assert {t for t in texts if t in extra_texts} == extra_texts
    assert any(t in extra_texts for t in texts[:20])
    assert any(t in extra_texts for t in texts[20:])
    # another draw deals another order, with the same share
    other = split_texts(0.25, draw=3)
    assert other != texts and sum(t in extra_texts for t in other) == 10
    # every sentence held out for dev and test stays out of training
    held = set(split_texts(0.25, held=True))
    assert held and not set(texts) & held


def test_extra_fraction_needs_extra_text(tmp_path: Path) -> None:
    result = build_cli("--out", str(tmp_path / "c"), "--extra-fraction", "0.3")
    assert result.returncode != 0
    assert "--extra-fraction needs --extra-train-text" in result.stderr
    assert not (tmp_path / "c").exists()


def test_tuning_voices_read_the_dev_sentences(tmp_path: Path) -> None:
    text_file = sentences_file(tmp_path)
    out = tmp_path / "corpus"
    config = CorpusConfig(
        held_out_sentences=NO_SET_ASIDE,
        out=out,
        voices=("flite:slt", "espeak:en-us+m1"),
        heldout_voices=("flite:awb",),
        tune_voices=("flite:kal", "espeak:en-us+f4"),
        train_utts=3,
        dev_utts=2,
        test_utts=1,
        layout="librispeech",
        text_file=text_file,
        jobs=2,
    )
    summary = build_corpus(config)
    assert summary["counts"] == {"train": 3, "dev": 2, "test": 1, "tune": 2}
    assert summary["tune_voices"] == ["flite:kal", "espeak:en-us+f4"]
    rows = {
        split: [
            json.loads(x) for x in (out / f"{split}.jsonl").read_text().splitlines()
        ]
        for split in ("train", "dev", "test", "tune")
    }
    # the dev sentences, read by the tuning voices only, one utterance each
    assert sorted(r["text"] for r in rows["tune"]) == sorted(
        r["text"] for r in rows["dev"]
    )
    assert {r["speaker"] for r in rows["tune"]} == set(config.tune_voices)
    for split in ("train", "dev", "test"):
        assert not {r["speaker"] for r in rows[split]} & set(config.tune_voices)
    for row in rows["tune"]:
        assert Path(row["audio"]).parts[0] == "tune"
        assert Path(row["audio"]).parent.name == "4"  # the LibriSpeech chapter
        assert wav_info(out / row["audio"])[3] > 0.5
        stem = Path(row["audio"]).stem
        trans = (out / row["audio"]).parent / f"{stem.rsplit('-', 1)[0]}.trans.txt"
        assert f"{stem} {asr_transcript(row['text']).upper()}" in trans.read_text()
    assert "tune | flite:kal" in (out / "SPEAKERS.TXT").read_text()

    # no tuning voices: no tune.jsonl, as before
    plain = replace(config, out=tmp_path / "plain", tune_voices=())
    assert "tune" not in build_corpus(plain)["counts"]
    assert not (plain.out / "tune.jsonl").exists()


def test_tuning_voices_must_be_new_voices_and_need_dev_sentences(
    tmp_path: Path,
) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return build_cli(
            "--out", str(tmp_path / "c"), "--voices", "flite:slt",
            "--heldout-voices", "flite:awb", "--train-utts", "2", "--test-utts", "1",
            *args,
        )  # fmt: skip

    held = run("--dev-utts", "1", "--tune-voices", "flite:awb")
    assert held.returncode != 0
    assert held.stderr.strip().splitlines()[-1] == (
        "error: voices both in held-out and tuning: flite:awb"
    )
    trained = run("--dev-utts", "1", "--tune-voices", "flite:slt")
    assert "error: voices both in training and tuning: flite:slt" in trained.stderr
    no_dev = run("--dev-utts", "0", "--tune-voices", "flite:kal")
    assert no_dev.returncode != 0
    assert "need --dev-utts > 0" in no_dev.stderr
    assert not (tmp_path / "c" / "tune.jsonl").exists()


def test_corpus_cli_writes_accents_and_refuses_a_bad_share(tmp_path: Path) -> None:
    text_file = tmp_path / "sentences.txt"
    text_file.write_text(
        "\n".join(f"The man number {n} sat and ran with a cat." for n in range(12))
    )
    out = tmp_path / "corpus"
    result = build_cli(
        "--out", str(out), "--text-file", str(text_file), "--voices", "espeak:en-us+m1",
        "--heldout-voices", "espeak:en-us+f4", "--train-utts", "6", "--dev-utts", "1",
        "--test-utts", "1", "--raised-ae-fraction", "1", "--jobs", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accented"] == {"train": 6, "dev": 0, "test": 0}
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert all(row["accent"].startswith("raised-ae:") for row in rows)
    for split in ("dev", "test"):
        row = json.loads((out / f"{split}.jsonl").read_text())
        assert "accent" not in row

    bad = build_cli("--out", str(tmp_path / "bad"), "--raised-ae-fraction", "1.5")
    assert bad.returncode != 0
    assert "--raised-ae-fraction must be between 0 and 1" in bad.stderr
    assert not (tmp_path / "bad").exists()
