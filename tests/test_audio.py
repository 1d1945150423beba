"""Reading, resampling, PCM conversion and atomic writing of audio."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from speech.audio import (
    audio_info,
    float_to_pcm,
    iter_audio_blocks,
    load_audio,
    pcm_to_float,
    write_wav_atomic,
)
from speech.errors import AudioError, SpeechError


def _noise(frames: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (frames,) if channels == 1 else (frames, channels)
    return (rng.standard_normal(shape) * 0.1).astype(np.float32)


@pytest.fixture
def wav_16k(tmp_path):
    path = tmp_path / "clean.wav"
    sf.write(path, _noise(16000), 16000, subtype="PCM_16")
    return path


# ------------------------------------------------------------------ errors


def test_missing_file(tmp_path):
    path = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match=r"missing\.wav: no such file$"):
        load_audio(path)


def test_empty_file(tmp_path):
    path = tmp_path / "x.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"x\.wav: file is empty$"):
        load_audio(path)


def test_wav_with_zero_frames(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"silent\.wav: file is empty"):
        load_audio(path)
    with pytest.raises(AudioError, match="file is empty"):
        audio_info(path)


@pytest.mark.parametrize(
    "content", [os.urandom(4000), b"hello world, this is not audio\n" * 20]
)
def test_not_audio(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert message == f"{path}: not an audio file (Format not recognised)"
    assert isinstance(info.value, SpeechError)


def test_unsupported_container(tmp_path):
    path = tmp_path / "voice.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + os.urandom(200))
    with pytest.raises(AudioError, match=r"voice\.m4a: unsupported audio format \.m4a"):
        load_audio(path)


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(tmp_path)


def _truncated_wav(tmp_path, keep_fraction: float = 0.5):
    full = tmp_path / "full.wav"
    sf.write(full, _noise(16000), 16000, subtype="PCM_16")
    data = full.read_bytes()
    path = tmp_path / "t.wav"
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def test_truncated_wav_raises(tmp_path):
    path = _truncated_wav(tmp_path)
    for call in (load_audio, audio_info, lambda p: list(iter_audio_blocks(p))):
        with pytest.raises(AudioError) as info:
            call(path)
        message = str(info.value)
        assert message.startswith(f"{path}: truncated or corrupt audio (")
        assert "header declares 32000 bytes of audio" in message
        assert "\n" not in message


def test_truncated_wav_allowed_reads_what_exists(tmp_path, caplog):
    path = _truncated_wav(tmp_path)
    with caplog.at_level(logging.WARNING, logger="speech.audio"):
        audio = load_audio(path, allow_truncated=True)
    assert 7900 < len(audio) < 8100
    np.testing.assert_allclose(audio, _noise(16000)[: len(audio)], atol=1 / 32768)
    assert "truncated" in caplog.text


def test_header_only_wav(tmp_path):
    path = _truncated_wav(tmp_path, keep_fraction=44 / 32044)
    with pytest.raises(AudioError, match="truncated or corrupt"):
        load_audio(path)
    with pytest.raises(AudioError, match="file is empty"):
        load_audio(path, allow_truncated=True)


def test_cut_inside_header(tmp_path):
    path = _truncated_wav(tmp_path, keep_fraction=30 / 32044)
    with pytest.raises(AudioError, match=r"t\.wav: truncated or corrupt audio \("):
        load_audio(path)


@pytest.mark.parametrize("size_field", [0, 0xFFFFFFFF])
def test_wav_without_length_is_read_to_the_end(tmp_path, size_field, caplog):
    """Streaming writers leave 0 or 0xFFFFFFFF in the size fields."""
    full = tmp_path / "full.wav"
    sf.write(full, _noise(16000), 16000, subtype="PCM_16")
    data = bytearray(full.read_bytes())
    assert data[36:40] == b"data"
    data[4:8] = data[40:44] = size_field.to_bytes(4, "little")
    path = tmp_path / "live.wav"
    path.write_bytes(bytes(data) + b"\x01")  # plus half a sample
    with caplog.at_level(logging.WARNING, logger="speech.audio"):
        audio = load_audio(path)
    np.testing.assert_array_equal(audio, load_audio(full))
    assert audio_info(path) == (1.0, 16000, 1)
    assert sum(len(b) for b in iter_audio_blocks(path, 8000, 0.3)) == 8000
    assert ("no audio length" in caplog.text) == (size_field == 0)


def test_truncated_flac(tmp_path):
    full = tmp_path / "full.flac"
    sf.write(full, _noise(44100, channels=2), 44100)
    path = tmp_path / "t.flac"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(AudioError, match=r"t\.flac: truncated or corrupt audio"):
        load_audio(path)
    partial = load_audio(path, allow_truncated=True)
    assert 0 < len(partial) < 16000


# ------------------------------------------------------------------ reading


def test_stereo_flac_44k1_resampled(tmp_path):
    path = tmp_path / "stereo.flac"
    seconds = 1.5
    t = np.arange(int(44100 * seconds)) / 44100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    right = 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_24")

    assert audio_info(path) == (pytest.approx(seconds), 44100, 2)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == round(16000 * seconds)
    # The downmix is the mean: a 0.4 amplitude 440 Hz sine at 16 kHz.
    expected = 0.4 * np.sin(2 * np.pi * 440 * np.arange(len(audio)) / 16000)
    middle = slice(200, -200)  # away from the resampler's edge transients
    np.testing.assert_allclose(audio[middle], expected[middle], atol=2e-3)


def test_mono_16k_is_read_exactly(wav_16k):
    audio = load_audio(wav_16k)
    reference, _ = sf.read(wav_16k, dtype="float32")
    np.testing.assert_array_equal(audio, reference)
    assert audio_info(wav_16k) == (1.0, 16000, 1)


def test_output_is_clipped(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, np.array([0.5, 1.5, -2.0] * 100, np.float32), 16000, "FLOAT")
    audio = load_audio(path)
    assert audio.max() == 1.0 and audio.min() == -1.0


def test_blockwise_resampling_equals_whole(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, _noise(48000 * 5, channels=2), 48000, subtype="FLOAT")
    blocks = list(iter_audio_blocks(path, block_seconds=0.7))
    assert len(blocks) > 5
    streamed = np.concatenate(blocks)
    whole = load_audio(path)
    assert streamed.dtype == np.float32
    assert len(streamed) == len(whole) == 16000 * 5
    np.testing.assert_allclose(streamed, whole, atol=1e-4)
    direct = soxr.resample(_noise(48000 * 5, channels=2).mean(axis=1), 48000, 16000)
    np.testing.assert_allclose(whole, direct, atol=1e-5)


def test_blocks_without_resampling(wav_16k):
    blocks = list(iter_audio_blocks(wav_16k, block_seconds=0.25))
    assert [len(b) for b in blocks] == [4000] * 4
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(wav_16k))


def test_blocks_errors(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        next(iter_audio_blocks(tmp_path / "missing.wav"))
    with pytest.raises(ValueError, match="block_seconds"):
        next(iter_audio_blocks(tmp_path / "missing.wav", block_seconds=0))


def test_no_torch_import():
    code = "import sys, speech.audio; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# ------------------------------------------------------------------ PCM


def test_pcm_s16le_round_trip():
    samples = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 0.999, 2.0], np.float32)
    data = float_to_pcm(samples, "s16le")
    assert len(data) == 2 * len(samples)
    assert np.frombuffer(data, "<i2").tolist() == [
        0,
        16384,
        -16384,
        32767,
        -32768,
        32735,
        32767,
    ]
    back = pcm_to_float(data, "s16le")
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, np.clip(samples, -1, 1), atol=1 / 32768)


def test_pcm_f32le_round_trip():
    samples = _noise(100)
    back = pcm_to_float(float_to_pcm(samples, "f32le"), "f32le")
    np.testing.assert_array_equal(back, samples)


def test_pcm_odd_byte_count():
    with pytest.raises(ValueError, match="s16le audio needs a multiple of 2 bytes"):
        pcm_to_float(b"\x00\x01\x02", "s16le")
    with pytest.raises(ValueError, match="multiple of 4 bytes, got 6"):
        pcm_to_float(b"\x00" * 6, "f32le")
    with pytest.raises(ValueError, match="unknown PCM format"):
        pcm_to_float(b"", "u8")  # type: ignore[arg-type]


# ------------------------------------------------------------------ writing


def test_write_wav_atomic(tmp_path):
    path = tmp_path / "out.wav"
    samples = _noise(8000)
    write_wav_atomic(path, samples, 16000)
    np.testing.assert_allclose(load_audio(path), samples, atol=1 / 32768)
    write_wav_atomic(path, samples[:100], 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), samples[:100])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_write_wav_atomic_failure_leaves_target(tmp_path):
    path = tmp_path / "out.wav"
    write_wav_atomic(path, _noise(100), 16000)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_wav_atomic(path, np.zeros((2, 2, 2)), 16000)
    with pytest.raises(Exception):  # noqa: B017 (libsndfile rejects the rate)
        write_wav_atomic(path, _noise(100), -5)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]
