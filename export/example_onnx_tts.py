"""Streaming speech synthesis with ONNX Runtime and numpy only.

    python export/example_onnx_tts.py speech/models/onnx/tts "həlˈoʊ wˈɜːld." out.wav

Needs numpy, onnxruntime and soundfile; no torch and no part of this
toolkit. The input is a phoneme string in the voice's symbol table (in the
graph metadata; ``speech.text.text_to_phonemes`` or espeak-ng make one from
English text). The text encoder runs once, then the decoder and the vocoder
run chunk by chunk with fixed-size states: each chunk's audio could be played
as soon as it is made.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import onnxruntime as ort
import soundfile as sf


def session(path: str) -> tuple[ort.InferenceSession, dict[str, str]]:
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s, s.get_modelmeta().custom_metadata_map


def run(s: ort.InferenceSession, **feeds: np.ndarray) -> dict[str, np.ndarray]:
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, feeds), strict=True))


def synthesize(folder: str, phonemes: str) -> tuple[np.ndarray, int]:
    encoder, meta = session(f"{folder}/tts_encoder.onnx")
    decoder, _ = session(f"{folder}/tts_decoder_step.onnx")
    vocoder, vmeta = session(f"{folder}/tts_vocoder_step.onnx")
    symbols = {s: i for i, s in enumerate(json.loads(meta["symbols"])) if i > 0}
    ids = [symbols[c] for c in " ".join(phonemes.split()) if c in symbols]
    if not ids:
        raise SystemExit("no known phoneme symbols in the input")

    # Text encoder and predictors, then length regulation.
    out = run(
        encoder,
        ids=np.array([ids], np.int64),
        lengths=np.array([len(ids)], np.int64),
        pace=np.ones(1, np.float32),
        pitch_shift=np.zeros(1, np.float32),
    )
    frames = np.repeat(out["encodings"][0], out["durations"][0], axis=0)

    # Zero states, batch 1 (shapes from the graphs; the vocoder's mel cache
    # starts as silence).
    def zeros(s: ort.InferenceSession, skip: int) -> dict[str, np.ndarray]:
        state = {}
        for node in s.get_inputs()[skip:]:
            dtype = np.int64 if node.type == "tensor(int64)" else np.float32
            state[node.name] = np.zeros([1, *node.shape[1:]], dtype)
        return state

    decoder_state = zeros(decoder, 1)
    vocoder_state = zeros(vocoder, 1)
    vocoder_state["mel_cache"][:] = math.log(float(vmeta["log_floor"]))

    chunk = int(meta["chunk_size"])
    skip = int(vmeta["delay_samples"])  # centre padding of the mel analysis
    pieces = []
    tail = np.zeros(0, np.float32)
    for start in range(0, len(frames), chunk):
        step = run(decoder, frames=frames[None, start : start + chunk], **decoder_state)
        decoder_state = {n: step[f"new_{n}"] for n in decoder_state}
        voc = run(vocoder, mel=step["mel"].transpose(0, 2, 1), **vocoder_state)
        vocoder_state = {n: voc[f"new_{n}"] for n in vocoder_state}
        audio, tail = voc["audio"][0], voc["tail"][0]
        cut = min(skip, len(audio))
        skip -= cut
        pieces.append(audio[cut:])  # ready to play now
    pieces.append(tail[skip:])  # end of the utterance
    return np.concatenate(pieces), int(meta["sample_rate"])


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: example_onnx_tts.py VOICE_DIR PHONEMES OUT.wav")
    samples, rate = synthesize(sys.argv[1], sys.argv[2])
    sf.write(sys.argv[3], samples, rate, subtype="PCM_16")
    print(f"wrote {sys.argv[3]} ({len(samples) / rate:.2f} s)")
