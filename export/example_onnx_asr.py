"""Streaming speech recognition with ONNX Runtime and numpy only.

    python export/example_onnx_asr.py speech/models/onnx/asr talk.wav

Needs numpy, onnxruntime and soundfile; no torch and no part of this
toolkit: the step graph's metadata says everything (sample rate, filterbank,
chunk size, left context, vocabulary, edge silence). The audio is cut into the feature
windows of successive chunks and each chunk goes through ``asr_step.onnx``
with the caches of the previous one; CTC greedy decoding joins the tokens.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort
import soundfile as sf


def mel_banks(fb: dict, fft_size: int) -> np.ndarray:
    """(M, fft_size // 2 + 1) Kaldi triangular mel filters."""

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    rate, bins = fb["sample_rate"], fb["num_mel_bins"]
    high = fb["high_freq"] if fb["high_freq"] > 0 else fb["high_freq"] + rate / 2
    edges = mel(fb["low_freq"]) + (mel(high) - mel(fb["low_freq"])) / (
        bins + 1
    ) * np.arange(bins + 2)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fft_mel = mel(rate / fft_size * np.arange(fft_size // 2))[None, :]
    banks = np.maximum(
        0.0,
        np.minimum(
            (fft_mel - left) / (centre - left), (right - fft_mel) / (right - centre)
        ),
    )
    return np.pad(banks, ((0, 0), (0, 1)))


def fbank(samples: np.ndarray, fb: dict) -> np.ndarray:
    """(S,) float samples -> (F, M) Kaldi log-mel features (povey window,
    pre-emphasis, DC removal, snip edges; no dither)."""
    length = int(fb["sample_rate"] * fb["frame_length_ms"] / 1000)
    shift = int(fb["sample_rate"] * fb["frame_shift_ms"] / 1000)
    if len(samples) < length:
        return np.zeros((0, fb["num_mel_bins"]), np.float32)
    count = 1 + (len(samples) - length) // shift
    frames = np.lib.stride_tricks.sliding_window_view(samples, length)[::shift][:count]
    x = frames.astype(np.float64) * fb["input_scale"]
    x = x - x.mean(axis=1, keepdims=True)
    x = x - fb["preemphasis"] * np.concatenate([x[:, :1], x[:, :-1]], axis=1)
    n = np.arange(length)
    x = x * (0.5 - 0.5 * np.cos(2 * np.pi * n / (length - 1))) ** 0.85  # povey
    fft_size = 1 << (length - 1).bit_length()
    spectrum = np.fft.rfft(x, n=fft_size, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = power @ mel_banks(fb, fft_size).T
    return np.log(np.maximum(mel, np.finfo(np.float32).eps)).astype(np.float32)


def transcribe(folder: str, audio_path: str) -> str:
    session = ort.InferenceSession(
        f"{folder}/asr_step.onnx", providers=["CPUExecutionProvider"]
    )
    meta = session.get_modelmeta().custom_metadata_map
    fb = json.loads(meta["fbank"])
    vocabulary = json.loads(meta["vocabulary"])
    chunk, window = int(meta["chunk_size"]), int(meta["window"])
    stride = chunk * int(meta["subsampling"])
    field = int(meta["subsampling_field"])

    samples, rate = sf.read(audio_path, dtype="float32", always_2d=True)
    if rate != fb["sample_rate"]:
        raise SystemExit(f"{audio_path}: resample to {fb['sample_rate']} Hz first")
    # the silence the model wants around its input (the toolkit's
    # Recognizer adds the same): the leading part in whole encoder frames
    before, after = json.loads(meta["config"]).get("edge_padding", (0.0, 0.64))
    shift = int(fb["sample_rate"] * fb["frame_shift_ms"] / 1000)
    subsampling = int(meta["subsampling"])
    lead = (
        round(before / (subsampling * shift / fb["sample_rate"])) * subsampling * shift
    )
    audio = np.pad(samples.mean(axis=1), (lead, round(after * fb["sample_rate"])))
    features = fbank(audio, fb)

    # Zero caches for one stream: every input but the first two is state.
    state = {}
    for node in session.get_inputs()[3:]:
        shape = [1, *node.shape[1:]]
        state[node.name] = np.zeros(shape, np.float32)
    state["processed"] = np.zeros(1, np.int64)

    tokens: list[int] = []
    previous = 0  # the CTC blank
    start = 0
    while len(features) - start >= field:
        piece = features[start : start + window]
        valid = chunk
        if len(piece) < window:  # the last, partial chunk
            valid = (len(piece) - field) // int(meta["subsampling"]) + 1
            piece = np.pad(piece, ((0, window - len(piece)), (0, 0)))
        outputs = session.run(
            None,
            {"features": piece[None], "num_valid": np.array([valid]), **state},
        )
        names = [o.name for o in session.get_outputs()]
        result = dict(zip(names, outputs, strict=True))
        for token in result["log_probs"][0, :valid].argmax(axis=-1):
            if token != previous and token != 0:
                tokens.append(int(token))
            previous = int(token)
        state = {name: result[f"new_{name}"] for name in state}
        start += stride
    text = "".join(vocabulary[t] for t in tokens).replace("\u2581", " ")
    return " ".join(text.split())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: example_onnx_asr.py MODEL_DIR AUDIO_FILE")
    print(transcribe(sys.argv[1], sys.argv[2]))
