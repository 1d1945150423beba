"""The synthesizer API: streaming equals offline, controls, bad input, loading."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from speech.text.phonemize import PHONEME_SYMBOLS, text_to_ids, text_to_phonemes
from speech.tts import synthesizer as synthesizer_module
from speech.tts import synthesizer_base
from speech.tts.config import FastPitchConfig
from speech.tts.fastpitch import FastPitch, save_tts
from speech.tts.synthesizer import Synthesizer, load_synthesizer
from speech.tts.synthesizer_base import SynthesizerBase
from speech.tts.vocoder import Vocoder, VocoderConfig, save_vocoder

CHUNK = 4
HOP = 256
STEP = 4 * CHUNK  # frames per streaming step after the first chunk


def tiny_model(seed: int = 0) -> FastPitch:
    torch.manual_seed(seed)
    config = FastPitchConfig(
        symbols=PHONEME_SYMBOLS,
        model_dim=32,
        num_heads=2,
        ffn_dim=48,
        encoder_layers=1,
        decoder_layers=2,
        predictor_dim=16,
        chunk_size=CHUNK,
        past_context=8,
    )
    model = FastPitch(config).eval()
    with torch.no_grad():  # about 2 frames per symbol, whatever the weights
        model.duration_predictor.out.weight.mul_(0.01)
        model.duration_predictor.out.bias.fill_(1.1)
    return model


def tiny_vocoder() -> Vocoder:
    torch.manual_seed(1)
    return Vocoder(VocoderConfig(dim=32, intermediate_dim=48, num_layers=2)).eval()


@pytest.fixture(scope="module")
def tts() -> Synthesizer:
    return Synthesizer(tiny_model(), tiny_vocoder(), sentence_pause=0.1)


TEXT = (
    "The birch canoe slid on the smooth planks. "
    "Glue the sheet to the dark blue background!"
)


def test_stream_joins_to_synthesize(tts):
    options = dict(pace=1.3, pitch_shift=2.0, volume=0.8)
    whole = tts.synthesize(TEXT, **options)
    chunks = list(tts.stream(TEXT, **options))
    assert whole.dtype == np.float32 and whole.ndim == 1
    assert all(c.dtype == np.float32 for c in chunks)
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=2e-5)
    # The first chunk is one decoder chunk minus the vocoder's centre padding.
    assert len(chunks[0]) == CHUNK * HOP - tts.vocoder.delay_samples
    assert max(len(c) for c in chunks) <= max(STEP * HOP, round(0.1 * 16000))


def test_sentences_are_separated_by_a_pause(tts):
    one = tts.synthesize("The birch canoe slid on the smooth planks.")
    two = tts.synthesize("The birch canoe slid on the smooth planks. " * 2)
    pause = round(0.1 * tts.sample_rate)
    assert len(two) == 2 * len(one) + pause
    assert not two[len(one) : len(one) + pause].any()
    assert tts.sample_rate == 16000


def test_controls(tts):
    text = "Rice is often served in round bowls."
    normal = tts.synthesize(text)
    fast = tts.synthesize(text, pace=2.0)
    assert abs(len(fast) / len(normal) - 0.5) < 0.15
    assert not tts.synthesize(text, volume=0.0).any()
    loud = tts.synthesize(text, volume=1e6)
    assert np.abs(loud).max() <= 1.0
    np.testing.assert_allclose(
        tts.synthesize(text, volume=0.5), 0.5 * normal, atol=1e-6
    )
    with pytest.raises(ValueError):
        tts.synthesize(text, pace=0.0)
    with pytest.raises(ValueError):
        tts.stream(text, volume=-1.0)


def test_ids_and_phonemes_inputs(tts):
    text = "Rice is often served in round bowls."
    expected = tts.synthesize(text)
    np.testing.assert_allclose(
        tts.synthesize_ids(text_to_ids(text)), expected, atol=1e-6
    )
    from_phonemes = tts.synthesize_phonemes(text_to_phonemes(text))
    np.testing.assert_allclose(from_phonemes, expected, atol=1e-6)
    streamed = np.concatenate(list(tts.stream_ids(text_to_ids(text))))
    np.testing.assert_allclose(streamed, expected, atol=2e-5)
    with pytest.raises(ValueError):
        tts.synthesize_ids([])


def step_synthesize(
    tts: SynthesizerBase, utterances: list[list[int]], pace: float = 1.0
) -> list[np.ndarray]:
    """Several utterances through the step API at once, as a server batches
    them: utterance i starts i chunks late, streams of one chunk length share
    a decoder and a vocoder call. One 1-D output per utterance."""
    frames = [tts.frames(ids, pace) for ids in utterances]
    states = [(tts.init_decoder_state(), tts.init_vocoder_state()) for _ in frames]
    position = [0] * len(frames)
    skip = [tts.delay_samples] * len(frames)
    out: list[list[np.ndarray]] = [[] for _ in frames]
    for step in range(10_000):
        groups: dict[int, list[int]] = {}
        for i, x in enumerate(frames):
            if i <= step and position[i] < len(x):
                size = min(tts.chunk_size, len(x) - position[i])
                groups.setdefault(size, []).append(i)
        if not groups and step >= len(frames):
            break
        for size, group in groups.items():
            x = np.stack([frames[i][position[i] : position[i] + size] for i in group])
            mel, decoder = tts.decode_chunk(
                x, tts.stack_states([states[i][0] for i in group])
            )
            audio, tail, vocoder = tts.vocode_chunk(
                mel, tts.stack_states([states[i][1] for i in group])
            )
            for row, i in enumerate(group):
                states[i] = (
                    tts.unstack_states(decoder)[row],
                    tts.unstack_states(vocoder)[row],
                )
                position[i] += size
                cut = min(skip[i], audio.shape[1])
                out[i].append(audio[row, cut:])
                skip[i] -= cut
                if position[i] == len(frames[i]):
                    out[i].append(tail[row, skip[i] :])
    return [np.concatenate(parts) for parts in out]


def test_step_api_batches_streams_and_equals_synthesize(tts):
    texts = ["Rice is often served in round bowls.", "The juice of lemons!"]
    utterances = [next(tts.pieces(text)) for text in texts]
    assert tts.has_vocoder and tts.chunk_size == CHUNK
    assert tts.delay_samples == tts.vocoder.delay_samples
    frames = tts.frames(utterances[0], pace=1.2)
    assert frames.dtype == np.float32 and frames.shape[1] == 32  # (T, D)
    mel, _ = tts.decode_chunk(frames[None, :CHUNK], tts.init_decoder_state())
    assert isinstance(mel, np.ndarray) and mel.shape == (1, CHUNK, 80)
    outputs = step_synthesize(tts, utterances, pace=1.2)
    for text, audio in zip(texts, outputs, strict=True):
        expected = tts.synthesize(text, pace=1.2)
        assert audio.dtype == np.float32 and audio.shape == expected.shape
        np.testing.assert_allclose(audio, expected, atol=2e-5)
    # batched or alone, the same samples
    alone = step_synthesize(tts, utterances[1:], pace=1.2)[0]
    np.testing.assert_allclose(outputs[1], alone, atol=1e-6)


def test_step_api_needs_the_vocoder():
    tts = Synthesizer(tiny_model(), None)
    assert not tts.has_vocoder and tts.chunk_size == CHUNK
    frames = tts.frames(next(tts.pieces("Hello.")))
    mel, _ = tts.decode_chunk(frames[None, :CHUNK], tts.init_decoder_state())
    assert mel.shape[:2] == (1, CHUNK)
    with pytest.raises(RuntimeError, match="Griffin-Lim"):
        tts.init_vocoder_state()


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_a_clear_error(tts, text):
    with pytest.raises(ValueError, match="empty"):
        tts.synthesize(text)
    with pytest.raises(ValueError, match="empty"):
        tts.stream(text)  # raises at the call, before any iteration


def test_unknown_characters_are_skipped_with_a_warning(tts, caplog):
    with caplog.at_level(logging.WARNING):
        audio = tts.synthesize("Hello 😀 world, naïve 東京 café.")
    assert len(audio) > 0
    assert "dropped" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        nothing = tts.synthesize("😀😀 🎉")
    assert nothing.shape == (0,) and nothing.dtype == np.float32
    assert "nothing speakable" in caplog.text
    assert list(tts.stream("😀")) == []


def test_unknown_ids_are_dropped(tts, caplog):
    ids = text_to_ids("Rice is often served.")
    with caplog.at_level(logging.WARNING):
        audio = tts.synthesize_ids([*ids, 10_000])
    np.testing.assert_allclose(audio, tts.synthesize_ids(ids), atol=1e-6)
    assert "unknown to the model" in caplog.text


def test_long_text_streams_lazily_in_bounded_pieces(tts, monkeypatch):
    calls = []
    real = synthesizer_base.text_to_ids

    def counting(text: str) -> list[int]:
        calls.append(len(text))
        return real(text)

    monkeypatch.setattr(synthesizer_base, "text_to_ids", counting)
    sentence = "The juice of lemons makes fine punch. "
    long_text = sentence * (20_000 // len(sentence) + 1)
    assert len(long_text) >= 20_000
    stream = tts.stream(long_text, pace=3.0)
    first = next(stream)
    assert len(calls) == 1 and len(first) > 0  # only the first sentence so far
    for _ in range(50):
        chunk = next(stream)
        assert len(chunk) <= max(STEP * HOP, round(0.1 * 16000))
    assert len(calls) < 10
    # One enormous "sentence" (no punctuation) is cut into bounded pieces.
    words = "lemon " * 4000
    pieces = list(tts.pieces(words))
    assert len(pieces) > 1
    assert max(len(p) for p in pieces) <= synthesizer_module.MAX_SYMBOLS


@pytest.mark.slow
def test_very_long_text_streams_to_the_end(tts):
    sentence = "The juice of lemons makes fine punch. "
    long_text = sentence * (20_000 // len(sentence) + 1)
    total, largest, pieces = 0, 0, 0
    for chunk in tts.stream(long_text, pace=8.0):
        total += len(chunk)
        largest = max(largest, len(chunk))
        pieces += 1
    assert largest <= max(STEP * HOP, round(0.1 * 16000))
    assert pieces > 1000 and total > 60 * 16000  # a minute, never held at once


def test_griffin_lim_fallback():
    tts = Synthesizer(tiny_model(), None, sentence_pause=0.05, griffin_lim_iterations=4)
    whole = tts.synthesize(TEXT)
    chunks = list(tts.stream(TEXT))
    assert len(chunks) == 3  # sentence, pause, sentence
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=1e-6)
    assert np.isfinite(whole).all() and whole.dtype == np.float32


def test_load_synthesizer(tmp_path, caplog):
    model, vocoder = tiny_model(), tiny_vocoder()
    save_tts(model, tmp_path)
    save_vocoder(vocoder, tmp_path / "vocoder", dtype=torch.float32)
    loaded = load_synthesizer(tmp_path)
    assert loaded.vocoder is not None
    reference = Synthesizer(model, vocoder, sentence_pause=loaded.sentence_pause)
    text = "Rice is often served in round bowls."
    # fp16 weights: close to the float32 model, not equal.
    assert np.abs(loaded.synthesize(text) - reference.synthesize(text)).max() < 0.05
    fallback_dir = tmp_path / "no_vocoder"
    save_tts(model, fallback_dir)
    with caplog.at_level(logging.WARNING):
        fallback = load_synthesizer(fallback_dir)
    assert fallback.vocoder is None and "Griffin-Lim" in caplog.text
    with pytest.raises(FileNotFoundError):
        load_synthesizer(fallback_dir, griffin_lim_fallback=False)
    with pytest.raises(FileNotFoundError):
        load_synthesizer(tmp_path / "missing")


def test_mismatched_parts_are_rejected():
    model = tiny_model()
    other_mel = VocoderConfig(dim=32, intermediate_dim=48, num_layers=2)
    other_mel = VocoderConfig(
        dim=32,
        intermediate_dim=48,
        num_layers=2,
        mel=other_mel.mel.__class__(f_max=7600.0),
    )
    with pytest.raises(ValueError, match="mel"):
        Synthesizer(model, Vocoder(other_mel))
    foreign = FastPitch(model.config.replace(symbols=("_", "a", "b")))
    with pytest.raises(ValueError, match="symbol table"):
        Synthesizer(foreign, None)
