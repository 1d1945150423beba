"""Time to first audio and real-time factors of the PyTorch synthesizer on the CPU.

    python benchmarks/tts_latency.py                        # random default-size models
    python benchmarks/tts_latency.py --model speech/models/tts --threads 2

With random weights the duration predictor is pinned to 4.5 frames per
symbol (about a normal speaking rate) so that sentence lengths are realistic.
Each figure is the best (and the median) of ``--repeats`` runs, in ms; RTF =
compute seconds / audio seconds. Time to first audio covers the whole path of
``Synthesizer.stream``: normalisation, G2P, encoder and predictors, the first
decoder chunk and the first vocoder chunk. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from speech.text.phonemize import PHONEME_SYMBOLS, text_to_ids  # noqa: E402
from speech.tts.config import FastPitchConfig  # noqa: E402
from speech.tts.fastpitch import FastPitch  # noqa: E402
from speech.tts.synthesizer import Synthesizer, load_synthesizer  # noqa: E402
from speech.tts.vocoder import Vocoder  # noqa: E402

SENTENCE = (
    "The birch canoe slid on the smooth planks, "
    "and the boy was there when the sun rose."
)


def timed(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(best, median) wall time in ms."""
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3, float(np.median(times)) * 1e3


def random_synthesizer() -> Synthesizer:
    torch.manual_seed(0)
    model = FastPitch(FastPitchConfig(symbols=PHONEME_SYMBOLS)).eval()
    with torch.no_grad():
        model.duration_predictor.out.weight.mul_(0.01)
        model.duration_predictor.out.bias.fill_(float(np.log(4.5)))
    return Synthesizer(model, Vocoder().eval())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--model", default=None, help="voice folder (default: random weights)"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--text", default=SENTENCE)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tts = load_synthesizer(args.model) if args.model else random_synthesizer()
    if tts.vocoder is None:
        raise SystemExit("the voice has no vocoder: streaming figures need one")
    model, vocoder = tts.model, tts.vocoder
    ids = torch.tensor([text_to_ids(args.text)])
    chunk = model.config.chunk_size
    rows = []
    with torch.inference_mode():
        prosody = model.prosody(ids)
        frames, length = prosody.frames, int(prosody.frame_lengths[0])
        seconds = length * model.config.mel.frame_seconds
        mel = torch.randn(1, model.config.mel.n_mels, chunk)

        def decode_stream(step: int) -> None:
            state = model.decoder.init_state(1)
            for start in range(0, length, step):
                _, state = model.decoder.forward_chunk(
                    frames[:, start : start + step], state
                )

        parts = {
            "encoder + predictors": lambda: model.prosody(ids),
            "first decoder chunk": lambda: model.decoder.forward_chunk(
                frames[:, :chunk], model.decoder.init_state(1)
            ),
            "first vocoder chunk": lambda: vocoder.forward_chunk(
                mel, vocoder.init_state(1)
            ),
            "time to first audio": lambda: next(iter(tts.stream(args.text))),
        }
        for name, function in parts.items():
            best, median = timed(function, args.repeats)
            rows.append((f"{name} (ms)", best, median))
        per_second = {
            "decoder, 1 chunk per call (ms / s audio)": lambda: decode_stream(chunk),
            "decoder, 4 chunks per call (ms / s audio)": lambda: decode_stream(
                4 * chunk
            ),
            "decoder, whole sentence (ms / s audio)": lambda: model.decoder(
                frames, prosody.frame_lengths
            ),
        }
        for name, function in per_second.items():
            best, median = timed(function, args.repeats)
            rows.append((name, best / seconds, median / seconds))
        for name, function in {
            "RTF stream": lambda: sum(len(c) for c in tts.stream(args.text)),
            "RTF synthesize": lambda: tts.synthesize(args.text),
        }.items():
            best, median = timed(function, args.repeats)
            rows.append((name, best / 1e3 / seconds, median / 1e3 / seconds))
    print(
        f"{ids.shape[1]} symbols, {length} frames ({seconds:.2f} s of audio), "
        f"{args.threads} thread(s), {'trained' if args.model else 'random'} weights\n"
    )
    print("| measure | best | median |\n|---|---|---|")
    for name, best, median in rows:
        print(f"| {name} | {best:.4g} | {median:.4g} |")


if __name__ == "__main__":
    main()
