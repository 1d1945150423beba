"""The word n-gram LM (estimation, ARPA, queries) and its fusion in beam search."""

from __future__ import annotations

import gzip
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speech.asr.decoding import (
    StreamingCtcDecoder,
    ctc_greedy,
    ctc_prefix_beam_search,
)
from speech.asr.lm import EOS, UNK, LmFusion, NgramLM
from speech.asr.recognizer import LM_FILE, load_recognizer
from speech.text.normalize import asr_transcript

SENTENCES = [
    "thus i went and thus i go",
    "i go where i went",
    "the cat sat on the mat",
    "the dog sat on the log",
    "thus the cat went",
    "a cat and a dog",
]


@pytest.fixture(scope="module")
def lm() -> NgramLM:
    return NgramLM.estimate([s.split() for s in SENTENCES], order=3)


def _vocabulary(model: NgramLM) -> list[str]:
    return [g[0] for g in model.entries if len(g) == 1 and g[0] != "<s>"]


@pytest.mark.parametrize(
    "history", [("<s>",), ("the",), ("thus", "i"), ("sat", "on"), ("zebra",), ()]
)
def test_kneser_ney_distributions_sum_to_one(lm, history) -> None:
    state = history if history in lm.entries else ()
    total = sum(math.exp(lm.score(state, w)[0]) for w in _vocabulary(lm))
    assert total == pytest.approx(1.0, abs=1e-6)


def test_seen_words_outrank_unseen_and_oov_scores_as_unk(lm) -> None:
    state = lm.begin()
    _, state = lm.score(state, "the")
    seen, _ = lm.score(state, "cat")
    unseen, _ = lm.score(state, "went")
    assert seen > unseen
    assert lm.score(state, "zebra")[0] == lm.score(state, UNK)[0]
    assert lm.sentence_log_prob("thus i go".split()) > lm.sentence_log_prob(
        "thuss i go".split()
    )


def test_lexicon_words_share_the_floor_and_unk_sits_below(tmp_path) -> None:
    sentences = [s.split() for s in SENTENCES]
    plain = NgramLM.estimate(sentences, order=3)
    lexed = NgramLM.estimate(
        sentences, order=3, lexicon=["zebra", "cat", "<s>"], unk_penalty=3.0
    )
    vocabulary = _vocabulary(lexed)
    assert set(vocabulary) == set(_vocabulary(plain)) | {"zebra"}
    for history in [("<s>",), ("the",), ("thus", "i"), ()]:
        state = history if history in lexed.entries else ()
        total = sum(math.exp(lexed.score(state, w)[0]) for w in vocabulary)
        assert total == pytest.approx(1.0, abs=1e-6)
    state = lexed.score(lexed.begin(), "the")[1]
    zebra, unk = lexed.score(state, "zebra")[0], lexed.score(state, "yak")[0]
    assert unk == pytest.approx(zebra - 3.0 * math.log(10))
    assert lexed.score(state, "cat")[0] > zebra  # seen words outrank it
    # from the command line: a word list, normalised to transcript form
    words = tmp_path / "words"
    words.write_text("Zebra\nYak's\nnew york\n\n", encoding="utf-8")
    text = tmp_path / "text.txt"
    text.write_text("".join(f"{s.capitalize()}.\n" for s in SENTENCES), "utf-8")
    out = tmp_path / "lm.arpa"
    subprocess.run(
        [sys.executable, "-m", "recipes.asr.train_lm", "--text-file", str(text),
         "--min-words", "1", "--lexicon", str(words), "--unk-penalty", "2",
         "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    built = NgramLM.load(out)
    assert {"zebra", "yak's"} <= set(_vocabulary(built))
    assert "new" not in _vocabulary(built)
    assert built.score((), UNK)[0] == pytest.approx(
        built.score((), "zebra")[0] - 2.0 * math.log(10), abs=1e-4
    )


def test_backoff_follows_arpa_semantics(tmp_path) -> None:
    arpa = tmp_path / "tiny.arpa"
    arpa.write_text(
        "\\data\\\nngram 1=5\nngram 2=2\n\n\\1-grams:\n"
        "-1.0\t<unk>\n-99\t<s>\t-0.5\n-0.5\ta\t-0.25\n-0.6\tb\n-0.7\t</s>\n\n"
        "\\2-grams:\n-0.1\t<s> a\n-0.2\ta b\n\n\\end\\\n"
    )
    model = NgramLM.load(arpa)
    log_p, state = model.score(("<s>",), "a")
    assert log_p == pytest.approx(-0.1 * math.log(10))
    assert state == ("a",)
    # "a </s>" is unseen: bow(a) + P(</s>)
    assert model.score(("a",), EOS)[0] == pytest.approx(-0.95 * math.log(10))
    # "b" has no bigrams and no backoff weight: "b a" is P(a)
    log_p, state = model.score(("a",), "b")
    assert log_p == pytest.approx(-0.2 * math.log(10))
    assert model.score(state, "a")[0] == pytest.approx(-0.5 * math.log(10))
    # a history the model never saw is dropped from the state
    assert model.score(("zebra",), "a")[1] == ("a",)


def test_parsed_lm_cache(lm, tmp_path, monkeypatch) -> None:
    """A second load of the same ARPA file reads the cached arrays; a broken
    cache is parsed around and rewritten; no cache directory, or one that
    cannot be written, changes nothing but the speed."""
    arpa = tmp_path / "lm.arpa.gz"
    lm.save(arpa)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SPEECH_CACHE_DIR", str(cache))
    parsed = NgramLM.load(arpa)
    files = list(cache.glob("lm-*.npz"))
    assert len(files) == 1

    def no_parsing(cls, path):  # type: ignore[no-untyped-def]
        raise AssertionError(f"{path} parsed again")

    with monkeypatch.context() as patch:
        patch.setattr(NgramLM, "_parse", classmethod(no_parsing))
        cached = NgramLM.load(arpa)
    assert cached.order == parsed.order
    assert dict(cached.entries.items()) == dict(parsed.entries.items())
    for sentence in SENTENCES:
        assert cached.sentence_log_prob(sentence.split()) == parsed.sentence_log_prob(
            sentence.split()
        )
    files[0].write_bytes(b"not a cache")
    again = NgramLM.load(arpa)
    assert dict(again.entries.items()) == dict(parsed.entries.items())
    assert files[0].read_bytes()[:2] == b"PK"  # rewritten as a zip of arrays
    # another ARPA file gets its own entry
    NgramLM.estimate([["other", "words", "here"]]).save(tmp_path / "other.arpa")
    NgramLM.load(tmp_path / "other.arpa")
    assert len(list(cache.glob("lm-*.npz"))) == 2
    monkeypatch.setenv("SPEECH_CACHE_DIR", "")
    for file in cache.iterdir():
        file.unlink()
    NgramLM.load(arpa)
    assert not list(cache.iterdir())
    twice = tmp_path / "twice.arpa"
    twice.write_text(
        "\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<unk>\n-0.5\tcat\n-0.7\tcat\n"
        "\n\\end\\\n"
    )
    with pytest.raises(ValueError, match="twice.arpa: the n-gram 'cat' is listed"):
        NgramLM.load(twice)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("SPEECH_CACHE_DIR", str(blocked))
    assert dict(NgramLM.load(arpa).entries.items()) == dict(parsed.entries.items())


def test_lm_cache_keeps_the_most_recently_used(tmp_path, monkeypatch) -> None:
    """The cache holds the parsed arrays of the CACHE_KEEP LM files used last:
    writing one more deletes the least recently used, and a load from the
    cache counts as a use."""
    import os
    import time

    from speech.asr import lm as lm_module

    cache = tmp_path / "cache"
    monkeypatch.setenv("SPEECH_CACHE_DIR", str(cache))
    monkeypatch.setattr(lm_module, "CACHE_KEEP", 3)
    arpas = []
    for word in ("alpha", "bravo", "charlie", "delta"):
        path = tmp_path / f"{word}.arpa"
        NgramLM.estimate([[word, "and", "more", "words"]]).save(path)
        arpas.append(path)

    def entries() -> set[str]:
        return {p.name for p in cache.glob("lm-*.npz")}

    names = []
    for step, path in enumerate(arpas[:3]):
        NgramLM.load(path)
        (new,) = entries() - set(names)
        names.append(new)
        # distinct use times, whatever the file system's clock resolution
        os.utime(cache / new, ns=(time.time_ns(), (1_000 + step) * 10**9))
    (cache / "notes.txt").write_text("not an LM: left alone")
    NgramLM.load(arpas[0])  # a cache hit: alpha is now the most recent
    NgramLM.load(arpas[3])  # a fourth entry: bravo, used longest ago, goes
    assert len(entries()) == 3
    assert names[0] in entries() and names[2] in entries()
    assert names[1] not in entries()
    assert (cache / "notes.txt").exists()


def test_arpa_round_trip_plain_and_gzip(lm, tmp_path) -> None:
    for name in ("lm.arpa", "lm.arpa.gz"):
        lm.save(tmp_path / name)
        again = NgramLM.load(tmp_path / name)
        assert again.order == lm.order
        for sentence in [*SENTENCES, "zebra cat went home"]:
            # ARPA keeps five decimals of log10: at most 5e-6 per n-gram and
            # per backoff weight, about 1.2e-5 in ln, over a handful of words
            assert again.sentence_log_prob(sentence.split()) == pytest.approx(
                lm.sentence_log_prob(sentence.split()), abs=1e-4
            )
        # the table gives back exactly the values the file holds
        reread = NgramLM.load(tmp_path / name)
        assert dict(reread.entries.items()) == dict(again.entries.items())
        assert len(again.entries) == len(lm.entries)
        assert set(again.entries) == set(lm.entries)
    first = (tmp_path / "lm.arpa.gz").read_bytes()
    lm.save(tmp_path / "lm.arpa.gz")
    assert (tmp_path / "lm.arpa.gz").read_bytes() == first  # reproducible
    assert gzip.decompress(first).decode().startswith("\\data\\")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_arpa_files_get_clear_errors(tmp_path) -> None:
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\nnot-a-number <unk>\n")
    with pytest.raises(ValueError, match=r"bad\.arpa:5: not an ARPA n-gram line"):
        NgramLM.load(bad)
    empty = tmp_path / "empty.arpa"
    empty.write_text("hello\n")
    with pytest.raises(ValueError, match="not an ARPA"):
        NgramLM.load(empty)
    with pytest.raises(ValueError, match="no sentences"):
        NgramLM.estimate([])


# ------------------------------------------------------------------ fusion

PIECES = [
    "<blank>",
    "\u2581thus",
    "\u2581thuss",
    "\u2581i",
    "\u2581go",
    "\u2581th",
    "uss",
]


def _frames(*rows: dict[int, float]) -> np.ndarray:
    """(T, V) log-probabilities: each row's tokens get their probabilities
    and the rest share what is left."""
    out = np.full((len(rows), len(PIECES)), 1e-4)
    for t, row in enumerate(rows):
        for token, p in row.items():
            out[t, token] = p
        out[t] /= out[t].sum()
    return np.log(out).astype(np.float32)


def test_fusion_corrects_a_misspelling_that_greedy_keeps(lm) -> None:
    # "thuss" is acoustically a little more likely than "thus"
    log_probs = _frames({2: 0.55, 1: 0.45}, {0: 1}, {3: 1}, {0: 1}, {4: 1}, {0: 1})
    greedy = [h.token for h in ctc_greedy(log_probs)]
    assert greedy == [2, 3, 4]
    plain = ctc_prefix_beam_search(log_probs, beam_size=4)
    assert plain[0].tokens == (2, 3, 4)
    fusion = LmFusion(lm, PIECES, weight=0.5, word_bonus=1.0)
    fused = ctc_prefix_beam_search(log_probs, beam_size=4, fusion=fusion)
    assert fused[0].tokens == (1, 3, 4)
    assert [h.token for h in fused[0].hits] == [1, 3, 4]


def test_partial_words_outside_the_vocabulary_pay_at_once(lm) -> None:
    fusion = LmFusion(lm, PIECES)
    root = fusion.root()
    spelled = fusion.extend(root, 5)  # "th": a prefix of "thus"
    assert spelled[1] == 0.0 and not spelled[3]
    wrong = fusion.extend(spelled, 6)  # "thuss": no word starts so
    assert wrong[3] and wrong[1] < 0.0
    unk = fusion.extend(root, 2)
    assert unk[1] == pytest.approx(wrong[1])
    # the <unk> is not scored again when the word ends
    assert fusion.final(wrong) == pytest.approx(fusion.final(unk))


def test_unknown_words_pay_for_their_letters(lm) -> None:
    plain = LmFusion(lm, PIECES, oov_penalty=0.0)
    costly = LmFusion(lm, PIECES, oov_penalty=0.7)
    for fusion in (plain, costly):
        assert fusion.extend(fusion.root(), 1).score == 0.0  # "thus": open
    # "thuss" spelt in one piece or as "th" + "uss": <unk> and five letters
    root = costly.root()
    whole = costly.extend(root, 2)
    pieces = costly.extend(costly.extend(root, 5), 6)
    unk = plain.extend(plain.root(), 2).score
    assert whole.score == pytest.approx(unk - 0.7 * 5)
    assert pieces.score == pytest.approx(whole.score)
    # a word that ends as a prefix of known words only ("th") is unknown too
    ended = costly.final(costly.extend(root, 5))
    assert ended == pytest.approx(plain.final(plain.extend(plain.root(), 5)) - 1.4)
    # known words cost what they did
    words = [1, 3, 4]  # thus i go
    assert _fused(costly, words) == pytest.approx(_fused(plain, words))
    with pytest.raises(ValueError, match="oov_penalty"):
        LmFusion(lm, PIECES, oov_penalty=-1.0)
    # a finished hypothesis scores the same from its words as piece by piece,
    # unknown words ("thuss" whole or in pieces, "th") included
    for tokens, text in (
        ([1, 3, 4], "thus i go"),
        ([2, 3], "thuss i"),
        ([5, 6, 4], "thuss go"),
        ([5], "th"),
    ):
        for fusion in (plain, costly):
            assert fusion.sentence_score(text.split()) == pytest.approx(
                _fused(fusion, tokens)
            ), text


def _fused(fusion: LmFusion, tokens: list[int]) -> float:
    node = fusion.root()
    for token in tokens:
        node = fusion.extend(node, token)
    return fusion.final(node)


def test_the_spelling_cost_keeps_words_apart(lm) -> None:
    # "the" then "cat" with no word start: "thecat", one unknown word whose
    # <unk> costs less than "the" and "cat" together; the sound says "cat"
    # without its word start 49 to 1
    pieces = ["<blank>", "\u2581the", "cat", "\u2581cat", "\u2581sat"]
    rows = [{1: 1}, {0: 1}, {2: 0.98, 3: 0.02}, {0: 1}, {4: 1}, {0: 1}]
    log_probs = np.full((len(rows), len(pieces)), 1e-4)
    for t, row in enumerate(rows):
        for token, p in row.items():
            log_probs[t, token] = p
        log_probs[t] /= log_probs[t].sum()
    log_probs = np.log(log_probs).astype(np.float32)

    def best(oov_penalty: float) -> tuple[int, ...]:
        fusion = LmFusion(lm, pieces, 0.5, 1.0, oov_penalty)
        return ctc_prefix_beam_search(log_probs, beam_size=4, fusion=fusion)[0].tokens

    assert best(0.0) == (1, 2, 4)  # "thecat sat"
    assert best(1.0) == (1, 3, 4)  # "the cat sat"


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 9), min_size=1, max_size=5),
    seed=st.integers(0, 10_000),
)
def test_streaming_with_lm_equals_offline(lm, cuts, seed) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(30, len(PIECES))) * 3
    logits[:, 0] += 2.0
    log_probs = (logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(
        np.float32
    )
    fusion = LmFusion(lm, PIECES)
    offline = ctc_prefix_beam_search(log_probs, beam_size=6, fusion=fusion)
    decoder = StreamingCtcDecoder("beam", beam_size=6, fusion=fusion)
    start = 0
    for size in [*cuts, len(log_probs)]:
        decoder.accept(log_probs[start : start + size])
        start += size
        if start >= len(log_probs):
            break
    streamed = decoder.nbest()
    assert [h.tokens for h in streamed] == [h.tokens for h in offline]
    assert [h.score for h in streamed] == pytest.approx([h.score for h in offline])


def test_max_log_prob_bounds_every_score(lm) -> None:
    bound = lm.max_log_prob()
    words = [*_vocabulary(lm), "zebra", EOS]
    states = [lm.begin(), (), ("the",), ("thus", "i"), ("sat", "on"), ("zebra",)]
    scores = [lm.score(state, word)[0] for state in states for word in words]
    assert max(scores) <= bound <= 0.0
    # a backoff above 0 (legal in ARPA) raises the bound by as much per level
    entries = {**dict(lm.entries.items()), ("the",): (-1.0, 0.5)}
    top = max(log_p for log_p, _ in entries.values())
    lifted = NgramLM(lm.order, entries)
    assert lifted.max_log_prob() == pytest.approx((top + 2 * 0.5) * math.log(10))
    assert lifted.score(("the",), "zebra")[0] <= lifted.max_log_prob()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    beam=st.integers(1, 8),
    bonus=st.sampled_from([-1.0, 0.0, 1.5, 4.0]),
)
def test_fusion_scores_only_prefixes_that_can_make_the_beam(
    lm, seed, beam, bonus
) -> None:
    """Prefixes whose bound cannot reach the beam get no LM node; the beam
    search gives exactly what scoring every prefix gives."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(40, len(PIECES))) * 3
    logits[:, 0] += 2.0
    log_probs = (logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(
        np.float32
    )

    class EveryPrefix(LmFusion):
        max_gain = math.inf  # every prefix scored, as before the bound

    lazy = LmFusion(lm, PIECES, weight=0.5, word_bonus=bonus)
    eager = EveryPrefix(lm, PIECES, weight=0.5, word_bonus=bonus)
    calls = {"lazy": 0, "eager": 0}

    def counted(fusion, name):
        extend = fusion.extend

        def wrapper(parent, token):
            calls[name] += 1
            return extend(parent, token)

        fusion.extend = wrapper

    counted(lazy, "lazy")
    counted(eager, "eager")
    got = ctc_prefix_beam_search(log_probs, beam_size=beam, fusion=lazy)
    want = ctc_prefix_beam_search(log_probs, beam_size=beam, fusion=eager)
    assert [h.tokens for h in got] == [h.tokens for h in want]
    assert [h.score for h in got] == [h.score for h in want]
    assert [h.hits for h in got] == [h.hits for h in want]
    assert calls["lazy"] <= calls["eager"]


def test_fusion_needs_beam_search(lm) -> None:
    with pytest.raises(ValueError, match="needs beam search"):
        StreamingCtcDecoder("greedy", fusion=LmFusion(lm, PIECES))


# ------------------------------------------------------- recognizer and CLI


# everyday sentences; each one is read by a training voice (flite slt) and by
# the held-out voice the model finds hardest (flite rms)
EVERYDAY = [
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "a stitch in time saves nine and a penny saved is a penny earned",
    "the weather today is cold and windy with rain in the evening",
    "please call me back when you have time to talk about the meeting",
    "we need to buy milk bread and eggs before the store closes",
    "the train to the city leaves at half past seven every morning",
    "my brother lives in a small house near the river",
]


def test_shipped_model_with_its_lm_transcribes_speech(tmp_path) -> None:
    from speech.asr.metrics import word_errors

    fused_rec = load_recognizer(beam_size=16)
    assert str(fused_rec.lm_source).endswith(LM_FILE)
    plain_rec = load_recognizer(beam_size=16, lm=None)
    fusion = fused_rec.fusion
    assert fusion is not None
    errors = {"fused": 0, "plain": 0}
    words = 0
    for voice in ("slt", "rms"):
        for i, text in enumerate(EVERYDAY):
            wav = tmp_path / f"{voice}-{i}.wav"
            subprocess.run(
                ["flite", "-voice", voice, "-t", text, "-o", str(wav)], check=True
            )
            fused = asr_transcript(fused_rec.transcribe(wav).text)
            plain = asr_transcript(plain_rec.transcribe(wav).text)
            # the LM only ever moves the beam to what it scores higher:
            # likelier English, no more words than pay their bonus, no
            # unknown words longer than their spelling cost allows
            assert fusion.sentence_score(fused.split()) >= fusion.sentence_score(
                plain.split()
            ), (fused, plain)
            errors["fused"] += word_errors(text, fused)[0]
            errors["plain"] += word_errors(text, plain)[0]
            words += len(text.split())
    # stage 7 + lexicon LM: 32 errors in 180 words, 51 without the LM
    assert errors["fused"] / words < 0.25, errors
    assert errors["fused"] < 0.8 * errors["plain"], errors
    greedy = load_recognizer()
    assert "dog" in greedy.transcribe(tmp_path / "slt-0.wav").text
    assert greedy._fusion is None  # greedy decoding never reads the LM


def test_cli_decodes_with_the_lm_by_default(tmp_path) -> None:
    """`speech transcribe` with the shipped model (which has an LM) runs beam
    search with it unless told otherwise; --beam-size 1 and --lm none give
    greedy decoding (all three over its default warp ensemble)."""
    from speech.cli import DEFAULT_ENSEMBLE
    from speech.formats import to_txt

    wavs = []
    for i, text in enumerate(EVERYDAY[:4]):
        wav = tmp_path / f"rms-{i}.wav"
        subprocess.run(
            ["flite", "-voice", "rms", "-t", text, "-o", str(wav)], check=True
        )
        wavs.append(wav)
    fused = load_recognizer(beam_size=16, vtln=DEFAULT_ENSEMBLE)
    greedy = load_recognizer(vtln=DEFAULT_ENSEMBLE)
    want = {w.stem: to_txt(fused.transcribe(w)) for w in wavs}
    plain = {w.stem: to_txt(greedy.transcribe(w)) for w in wavs}
    assert want != plain  # the held-out voice gives the LM work to do
    for name, extra in (("default", []), ("greedy", ["--beam-size", "1"]),
                        ("no-lm", ["--lm", "none"])):  # fmt: skip
        out = tmp_path / name
        done = subprocess.run(
            [sys.executable, "-m", "speech.cli", "transcribe", *map(str, wavs),
             "--output-dir", str(out), "--quiet", *extra],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        got = {p.stem: p.read_text() for p in out.glob("*.txt")}
        assert got == (want if name == "default" else plain), name


def test_cli_lm_options(speech_file, tmp_path) -> None:
    run = [sys.executable, "-m", "speech.cli", "transcribe", str(speech_file)]
    with_lm = subprocess.run(
        [*run, "--beam-size", "8"], capture_output=True, text=True, timeout=300
    )
    assert with_lm.returncode == 0, with_lm.stderr
    assert "fox" in with_lm.stdout
    no_lm = subprocess.run(
        [*run, "--beam-size", "8", "--lm", "none"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert no_lm.returncode == 0, no_lm.stderr
    bad = tmp_path / "bad.arpa"
    bad.write_text("not an lm\n")
    broken = subprocess.run(
        [*run, "--beam-size", "8", "--lm", str(bad)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert broken.returncode == 2
    assert f"{bad}" in broken.stderr and "ARPA" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1
    zero = subprocess.run([*run, "--beam-size", "0"], capture_output=True, text=True)
    assert zero.returncode == 2 and "must be >= 1" in zero.stderr


def test_onnx_export_carries_the_lm(speech_file, tmp_path) -> None:
    from export.onnx_export import copy_lm
    from speech.onnx import DEFAULT_ONNX_DIR

    # install.sh exports the shipped model; the LM sits beside asr/
    recognizer = load_recognizer(backend="onnx", beam_size=16)
    assert recognizer.lm_source == DEFAULT_ONNX_DIR / LM_FILE
    torch_text = load_recognizer(beam_size=16).transcribe(speech_file).text
    assert recognizer.transcribe(speech_file).text == torch_text
    # a model folder without an LM exports none, and its export decodes without
    assert copy_lm(tmp_path, tmp_path / "out") is None
    (tmp_path / LM_FILE).write_bytes((DEFAULT_ONNX_DIR / LM_FILE).read_bytes())
    (tmp_path / "out").mkdir()
    assert copy_lm(tmp_path, tmp_path / "out") == tmp_path / "out" / LM_FILE
