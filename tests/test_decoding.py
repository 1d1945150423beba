"""CTC greedy and prefix beam search, streaming, endpointing and timestamps."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speech.asr.decoding import (
    DecodedSegment,
    Endpointer,
    EndpointRule,
    StreamingCtcDecoder,
    TokenHit,
    ctc_greedy,
    ctc_prefix_beam_search,
    decoded_to_segment,
    segments_from_words,
    words_with_times,
)
from speech.formats import Word

B = 0  # blank


def frames(best: list[int], vocab: int = 6, p: float = 0.9) -> np.ndarray:
    """(T, V) log-probs whose argmax per frame is ``best``, with probability p."""
    probs = np.full((len(best), vocab), (1 - p) / (vocab - 1))
    probs[np.arange(len(best)), best] = p
    return np.log(probs)


def random_log_probs(T: int, V: int, seed: int, blank_bias: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, V)) * 2.0
    x[:, 0] += blank_bias
    return x - np.logaddexp.reduce(x, axis=1, keepdims=True)


def brute_force(log_probs: np.ndarray) -> tuple[dict, dict]:
    """Every path: total log-prob per collapsed sequence, and its best path."""
    totals: dict = {}
    best: dict = {}
    T, V = log_probs.shape
    for path in itertools.product(range(V), repeat=T):
        score = float(sum(log_probs[t, c] for t, c in enumerate(path)))
        tokens = tuple(
            c for i, c in enumerate(path) if c != B and (i == 0 or c != path[i - 1])
        )
        totals[tokens] = np.logaddexp(totals.get(tokens, -np.inf), score)
        if score > best.get(tokens, (-np.inf,))[0]:
            best[tokens] = (score, path)
    return totals, best


class FakePieces:
    """id -> piece, as a tokenizer would map them."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def id_to_piece(self, token_id: int) -> str:
        return self.pieces[token_id]


PIECES = FakePieces(["<blank>", "<unk>", "▁he", "llo", "▁world", "▁a"])


# ------------------------------------------------------------------ greedy


def test_greedy_merges_repeats_and_keeps_frames():
    lp = frames([B, 2, 2, B, 3, 3, 3, B, B, 3, 4, B])
    hits = ctc_greedy(lp)
    assert [(h.token, h.start_frame, h.end_frame) for h in hits] == [
        (2, 1, 2),
        (3, 4, 6),
        (3, 9, 9),
        (4, 10, 10),
    ]
    assert all(h.log_prob == pytest.approx(np.log(0.9)) for h in hits)
    assert ctc_greedy(lp, frame_offset=100)[0].start_frame == 101
    assert ctc_greedy(np.zeros((0, 6))) == []
    with pytest.raises(ValueError, match=r"\(T, V\)"):
        ctc_greedy(np.zeros(6))


def test_greedy_other_blank_id():
    lp = frames([5, 2, 5, 2], vocab=6)
    assert [h.token for h in ctc_greedy(lp, blank=5)] == [2, 2]


# ------------------------------------------------------------- beam search


def test_beam_beats_greedy_on_constructed_case():
    # Each frame: blank 0.6, "a" 0.4. Greedy reads blank blank -> "" (p 0.36),
    # but P("a") = 0.4*0.4 + 0.4*0.6 + 0.6*0.4 = 0.64 over three alignments.
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    assert ctc_greedy(lp) == []
    nbest = ctc_prefix_beam_search(lp, beam_size=4)
    assert nbest[0].tokens == (1,)
    assert nbest[0].score == pytest.approx(np.log(0.64))
    assert nbest[1].tokens == () and nbest[1].score == pytest.approx(np.log(0.36))


@pytest.mark.parametrize("T,V,seed", [(6, 3, 0), (5, 4, 1), (7, 3, 2)])
def test_beam_is_exact_with_a_wide_beam(T, V, seed):
    lp = random_log_probs(T, V, seed, blank_bias=0.0)
    totals, best = brute_force(lp)
    nbest = ctc_prefix_beam_search(lp, beam_size=10_000, prune_threshold=-np.inf)
    assert len(nbest) == len(totals)
    for hyp in nbest:
        assert hyp.score == pytest.approx(totals[hyp.tokens], abs=1e-9)
        # The hits are the best path's: each token's run of frames.
        _, path = best[hyp.tokens]
        runs = []
        position = 0
        for token, group in itertools.groupby(path):
            length = len(list(group))
            if token != B:
                runs.append((token, position, position + length - 1))
            position += length
        assert [(h.token, h.start_frame, h.end_frame) for h in hyp.hits] == runs
    assert nbest[0].tokens == max(totals, key=totals.get)
    assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)


def test_beam_of_one_is_close_to_greedy():
    lp = frames([B, 2, 2, B, 3, B, 3, 4, 4, B])
    (hyp,) = ctc_prefix_beam_search(lp, beam_size=1)
    assert hyp.tokens == tuple(h.token for h in ctc_greedy(lp))
    assert [h[:3] for h in hyp.hits] == [h[:3] for h in ctc_greedy(lp)]


def test_beam_pruning_keeps_best_token():
    lp = random_log_probs(40, 30, seed=3)
    pruned = ctc_prefix_beam_search(lp, beam_size=4, prune_threshold=0.0)
    # With a threshold no token passes, only the argmax is tried: greedy.
    assert pruned[0].tokens == tuple(h.token for h in ctc_greedy(lp))
    full = ctc_prefix_beam_search(lp, beam_size=4, prune_threshold=-np.inf)
    assert full[0].score >= pruned[0].score - 1e-9


def test_beam_hits_are_consistent():
    lp = random_log_probs(200, 50, seed=4)
    for hyp in ctc_prefix_beam_search(lp, beam_size=6):
        assert tuple(h.token for h in hyp.hits) == hyp.tokens
        for a, b in itertools.pairwise(hyp.hits):
            assert a.start_frame <= a.end_frame < b.start_frame
        assert all(h.log_prob <= 0 for h in hyp.hits)


def test_beam_errors():
    with pytest.raises(ValueError, match="beam_size"):
        ctc_prefix_beam_search(frames([B]), beam_size=0)


# ------------------------------------------------------------- streaming


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=6),
    seed=st.integers(min_value=0, max_value=5),
    mode=st.sampled_from(["greedy", "beam"]),
)
def test_streaming_equals_offline(cuts, seed, mode):
    lp = random_log_probs(60, 12, seed, blank_bias=1.0)
    decoder = StreamingCtcDecoder(mode, beam_size=4)
    bounds = [0, *sorted(cuts), len(lp)]
    for start, end in itertools.pairwise(bounds):
        assert decoder.accept(lp[start:end]) == []  # no endpointer: no segments
    if mode == "greedy":
        expected_hits = tuple(ctc_greedy(lp))
        assert decoder.partial.hits == expected_hits
        assert decoder.partial.score == pytest.approx(lp.max(axis=1).sum())
    else:
        offline = ctc_prefix_beam_search(lp, beam_size=4)
        assert decoder.nbest() == offline
    assert decoder.num_frames == 60
    final = decoder.finish()
    assert final is None or (final.start_frame, final.end_frame) == (0, 60)


def test_greedy_token_run_across_chunks():
    lp = frames([B, 2, 2, 2, B, 3])
    decoder = StreamingCtcDecoder()
    for chunk in np.split(lp, [2, 3]):
        decoder.accept(chunk)
    assert [h[:3] for h in decoder.partial.hits] == [(2, 1, 3), (3, 5, 5)]


# ------------------------------------------------------------- endpointing


def test_endpointer_rules():
    # rule 2: 1 s of blank after speech = 13 frames of 80 ms.
    endpointer = Endpointer()
    assert endpointer.update([True] * 10 + [False] * 2 + [True] * 12) is None
    assert endpointer.update([True, True]) == 1
    # rule 1: 5 s of blank, nothing said = 63 frames.
    endpointer.reset()
    assert endpointer.update([True] * 62) is None
    assert endpointer.update([True]) == 1
    # rule 3: 20 s = 250 frames, whatever they hold.
    endpointer.reset()
    assert endpointer.update([False] * 249 + [True] * 3) == 250
    # Custom rules and frame shift.
    endpointer = Endpointer([EndpointRule(True, 0.5, 0.0)], frame_shift=0.04)
    assert endpointer.update([True] * 100) is None
    assert endpointer.update([False] + [True] * 13) == 14


def test_endpointing_splits_segments_with_absolute_times():
    speech_1 = [B, 2, 2, B, 3, B]  # "hello" at frames 1-4
    pause = [B] * 14  # 1.12 s
    speech_2 = [4, 4, B, 5]  # "world a"
    lp = frames(speech_1 + pause + speech_2 + [B] * 3)
    decoder = StreamingCtcDecoder(endpointer=Endpointer())
    closed = []
    for chunk in np.array_split(lp, 5):
        closed += decoder.accept(chunk)
    (first,) = closed
    assert isinstance(first, DecodedSegment)
    assert first.best.tokens == (2, 3)
    # rule 2 fires on the 13th blank after the last token (frame 4).
    assert (first.start_frame, first.end_frame) == (0, 4 + 13 + 1)
    assert decoder.segment_start == 18
    assert [h.start_frame for h in decoder.partial.hits] == [20, 23]
    last = decoder.finish()
    assert last.best.tokens == (4, 5)
    assert (last.start_frame, last.end_frame) == (18, len(lp))
    assert decoder.finish() is None  # nothing left

    segment = decoded_to_segment(first, PIECES)
    assert segment.text == "hello"
    assert segment.start == pytest.approx(0.08)
    assert segment.end == pytest.approx(0.40)
    later = decoded_to_segment(last, PIECES)
    assert [w.text for w in later.words] == ["world", "a"]
    assert later.words[0].start == pytest.approx(20 * 0.08)


def test_silence_only_segments_are_dropped():
    decoder = StreamingCtcDecoder("beam", endpointer=Endpointer())
    assert decoder.accept(frames([B] * 130, p=0.999)) == []  # rule 1 fired twice
    assert decoder.segment_start == 126
    closed = decoder.accept(frames([2] * 300))
    assert len(closed) == 1 and closed[0].start_frame == 126
    assert closed[0].end_frame == 126 + 250  # rule 3


# ------------------------------------------------------------- timestamps


def test_words_with_times():
    hits = [
        TokenHit(2, 1, 2, np.log(0.9)),  # ▁he
        TokenHit(3, 4, 4, np.log(0.5)),  # llo
        TokenHit(4, 10, 11, np.log(0.8)),  # ▁world
    ]
    words = words_with_times(hits, PIECES, frame_shift=0.08)
    assert [w.text for w in words] == ["hello", "world"]
    assert words[0].start == pytest.approx(0.08)
    assert words[0].end == pytest.approx(0.40)
    assert words[0].confidence == pytest.approx(0.7)
    assert (words[1].start, words[1].end) == (pytest.approx(0.8), pytest.approx(0.96))
    shifted = words_with_times(hits, PIECES, offset_frames=100)
    assert shifted[0].start == pytest.approx(8.08)
    # A segment that starts mid-word still yields a word.
    assert words_with_times(hits[1:2], PIECES)[0].text == "llo"
    assert words_with_times([], PIECES) == []


def test_segments_from_words():
    words = [
        Word("a", 0.0, 0.2),
        Word("b", 0.3, 0.5),
        Word("c", 2.0, 2.2),  # after a 1.5 s pause
        Word("d", 2.3, 2.5),
    ]
    segments = segments_from_words(words, max_gap=1.0)
    assert [(s.text, s.start, s.end) for s in segments] == [
        ("a b", 0.0, 0.5),
        ("c d", 2.0, 2.5),
    ]
    assert segments[1].words == words[2:]
    assert [s.text for s in segments_from_words(words, max_duration=0.4)] == [
        "a",
        "b",
        "c",
        "d",
    ]
    assert segments_from_words([]) == []


def test_no_torch_import():
    code = "import sys, speech.asr.decoding; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
