"""ONNX Runtime vs PyTorch eager on the CPU: real-time factors of streaming
and offline recognition and of synthesis, fp32 and int8.

    python benchmarks/onnx_vs_torch.py                      # random default-size models
    python benchmarks/onnx_vs_torch.py --asr-model speech/models/asr \\
        --tts-model speech/models/tts --audio a.wav b.wav   # trained models

Both back ends get the same number of threads (``--threads``, default 2).
Models are exported to a temporary folder (with the exporter's parity
check). RTF = compute seconds / audio seconds (lower is faster); each number
is the best of ``--repeats`` runs. With ``--audio``, transcripts of the fp32
graphs are compared with PyTorch's and the int8 graphs' word error rate
against the fp32 transcripts is printed. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from export.onnx_export import export_asr, export_tts  # noqa: E402
from speech.asr.model import AsrModel, save_model  # noqa: E402
from speech.asr.recognizer import Recognizer  # noqa: E402
from speech.asr.torch_backend import TorchBackend  # noqa: E402
from speech.onnx.asr import OnnxAsrBackend  # noqa: E402
from speech.onnx.tts import OnnxSynthesizer  # noqa: E402
from speech.text.phonemize import PHONEME_SYMBOLS, phonemes_to_ids  # noqa: E402
from speech.tts.synthesizer import load_synthesizer  # noqa: E402

PHONEMES = (
    "ðə nˈɔːɹθ wˈɪnd ænd ðə sˈʌn wɜː dɪspjˈuːtɪŋ wˈɪtʃ wʌz ðə strˈɔŋɡɚ, wɛn ɐ "
    "trˈævəlɚ kˈeɪm ɐlˈɔŋ ɹˈæpt ɪn ɐ wˈɔːɹm klˈoʊk. ðeɪ ɐɡɹˈiːd ðæt ðə wˈʌn hˌuː "
    "fˈɜːst sˈʌksˌiːdᵻd ɪn mˈeɪkɪŋ ðə trˈævəlɚ tˈeɪk hɪz klˈoʊk ˈɔf ʃˌʊd biː "
    "kənsˈɪdɚd strˈɔŋɡɚ ðɐn ðɪ ˈʌðɚ."
)


def best_of(repeats: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best time of each run; the runs take turns, so a load change on a
    shared machine hits all of them alike."""
    for run in runs.values():
        run()  # warm-up (first calls allocate)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


# ----------------------------------------------------------------- models


def random_asr(folder: Path) -> Path:
    """The default configuration with random weights, saved in float16 like
    a trained model (a BPE tokenizer trained on random words)."""
    from speech.asr.config import AsrConfig
    from speech.asr.tokenizer import Tokenizer

    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(3000)]
    texts = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    tokenizer = Tokenizer.train(texts, 256, folder / "tokenizer")
    torch.manual_seed(0)
    model = AsrModel(AsrConfig(vocab_size=tokenizer.vocab_size, dropout=0.0))
    model.tokenizer = tokenizer
    save_model(model, folder / "asr")
    return folder / "asr"


def random_tts(folder: Path) -> Path:
    from speech.tts.config import FastPitchConfig
    from speech.tts.fastpitch import FastPitch, save_tts
    from speech.tts.vocoder import Vocoder, save_vocoder

    torch.manual_seed(0)
    config = FastPitchConfig(
        symbols=PHONEME_SYMBOLS, dropout=0.0, attention_dropout=0.0,
        predictor_dropout=0.0,
    )  # fmt: skip
    model = FastPitch(config).eval()
    with torch.no_grad():  # ~6 frames (96 ms) per symbol, as in speech
        model.duration_predictor.out.bias.fill_(float(np.log(7.0)))
    save_tts(model, folder / "tts")
    save_vocoder(Vocoder(), folder / "tts" / "vocoder")
    return folder / "tts"


# ------------------------------------------------------------------ runs


def asr_rows(
    model_dir: Path, onnx_dirs: dict[str, Path], threads: int, seconds: float,
    repeats: int,
) -> list[tuple[str, dict[str, float]]]:  # fmt: skip
    backends = {"PyTorch eager": TorchBackend(model_dir)}
    for name, folder in onnx_dirs.items():
        backends[name] = OnnxAsrBackend(folder, threads=threads)
    config = backends["PyTorch eager"].config
    rng = np.random.default_rng(1)
    frames = int(seconds * 100)
    features = (rng.standard_normal((frames, config.num_mel_bins)) * 2 + 8).astype(
        np.float32
    )
    geometry = config.streaming
    window = (geometry.chunk_size - 1) * 8 + 15
    stride = geometry.chunk_size * 8
    starts = range(0, frames - window + 1, stride)
    audio = len(starts) * stride / 100
    valid = np.array([geometry.chunk_size])
    streams: dict[str, Callable[[], object]] = {}
    batches: dict[str, Callable[[], object]] = {}
    pieces = np.array_split(features, 4)  # 4 utterances, masked batching
    for name, backend in backends.items():

        def stream(backend=backend) -> None:
            state = backend.init_state(1, geometry.left_context)
            for start in starts:
                _, state = backend.step(
                    features[None, start : start + window], state, valid
                )

        streams[name] = stream
        batches[name] = lambda b=backend: b.encode_list(pieces, config.offline)
    streaming = {k: v / audio for k, v in best_of(repeats, streams).items()}
    offline = {k: v / (frames / 100) for k, v in best_of(repeats, batches).items()}
    return [
        (f"ASR streaming step (B=1, C={geometry.chunk_size})", streaming),
        ("ASR offline masked batch (4 utterances)", offline),
    ]


def tts_rows(
    voice_dir: Path, onnx_dirs: dict[str, Path], threads: int, repeats: int
) -> list[tuple[str, dict[str, float]]]:
    synthesizers = {"PyTorch eager": load_synthesizer(voice_dir)}
    for name, folder in onnx_dirs.items():
        synthesizers[name] = OnnxSynthesizer(folder, threads=threads)
    ids = phonemes_to_ids(PHONEMES)
    seconds = len(synthesizers["PyTorch eager"].synthesize_ids(ids)) / (
        synthesizers["PyTorch eager"].sample_rate
    )
    whole = best_of(
        repeats,
        {k: (lambda t=t: t.synthesize_ids(ids)) for k, t in synthesizers.items()},
    )
    streamed = best_of(
        repeats,
        {k: (lambda t=t: list(t.stream_ids(ids))) for k, t in synthesizers.items()},
    )
    whole = {k: v / seconds for k, v in whole.items()}
    streamed = {k: v / seconds for k, v in streamed.items()}
    return [("TTS synthesize (one utterance)", whole), ("TTS stream", streamed)]


def transcript_check(
    model_dir: Path, onnx_dirs: dict[str, Path], audio: list[str]
) -> list[str]:
    import jiwer

    reference = Recognizer(TorchBackend(model_dir))
    fp32 = Recognizer(OnnxAsrBackend(onnx_dirs["ORT fp32"]))
    int8 = Recognizer(OnnxAsrBackend(onnx_dirs["ORT int8"]))
    texts = {"torch": [], "fp32": [], "int8": []}
    for path in audio:
        texts["torch"].append(reference.transcribe(path).text)
        texts["fp32"].append(fp32.transcribe(path).text)
        texts["int8"].append(int8.transcribe(path).text)
    same = sum(a == b for a, b in zip(texts["torch"], texts["fp32"], strict=True))
    return [
        f"fp32 ONNX transcripts identical to PyTorch: {same} of {len(audio)}",
        "int8 WER against the fp32 transcripts: "
        f"{100 * jiwer.wer(texts['fp32'], texts['int8']):.2f} %",
    ]


def table(rows: list[tuple[str, dict[str, float]]]) -> str:
    lines = [
        "| task | PyTorch eager RTF | ORT fp32 RTF | ORT int8 RTF "
        "| fp32 speed-up | int8 speed-up |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for task, rtf in rows:
        base = rtf["PyTorch eager"]
        lines.append(
            f"| {task} | {base:.4f} | {rtf['ORT fp32']:.4f} | {rtf['ORT int8']:.4f} "
            f"| {base / rtf['ORT fp32']:.2f}x | {base / rtf['ORT int8']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asr-model", type=Path, help="default: random weights")
    parser.add_argument("--tts-model", type=Path, help="default: random weights")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="ASR input")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--audio", nargs="*", default=[], help="transcript check")
    parser.add_argument("--skip-tts", action="store_true")
    parser.add_argument("--skip-asr", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.skip_asr:
            model_dir = args.asr_model or random_asr(root)
            reports = export_asr(model_dir, root / "onnx/asr", root / "onnx/asr-int8")
            onnx_dirs = {
                "ORT fp32": root / "onnx/asr",
                "ORT int8": root / "onnx/asr-int8",
            }
            for report in reports:
                worst = max(report.parity.values())
                notes.append(
                    f"{report.folder.name}: largest file "
                    f"{report.largest / 2**20:.1f} MiB, total {report.size / 2**20:.1f}"
                    f" MiB, max |ORT - PyTorch| {worst:.1e}"
                )
            rows += asr_rows(
                model_dir, onnx_dirs, args.threads, args.seconds, args.repeats
            )
            if args.audio:
                notes += transcript_check(model_dir, onnx_dirs, args.audio)
        if not args.skip_tts:
            voice_dir = args.tts_model or random_tts(root)
            reports = export_tts(voice_dir, root / "onnx/tts", root / "onnx/tts-int8")
            for report in reports:
                parity = {k: v for k, v in report.parity.items() if "mismatch" not in k}
                notes.append(
                    f"{report.folder.name}: largest file "
                    f"{report.largest / 2**20:.1f} MiB, total {report.size / 2**20:.1f}"
                    f" MiB, max |ORT - PyTorch| {max(parity.values()):.1e}"
                )
            onnx_dirs = {
                "ORT fp32": root / "onnx/tts",
                "ORT int8": root / "onnx/tts-int8",
            }
            rows += tts_rows(voice_dir, onnx_dirs, args.threads, args.repeats)
    print(f"CPU, {args.threads} threads per back end; RTF = compute / audio seconds\n")
    print(table(rows))
    print()
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
