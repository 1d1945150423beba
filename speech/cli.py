"""The ``speech`` command: a thin layer over the library.

speech transcribe talk.wav --format srt --output-dir subs/
speech synthesize "Hello there." -o hello.wav
speech serve --port 8000
speech client asr talk.wav
speech export onnx --out exported/
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

FORMATS = ("txt", "json", "srt", "vtt")
# `speech transcribe` decodes with beam search and the word LM when there is
# one: on the held-out test set 9.0 % WER instead of greedy's 14.7 %, for
# 1.3-2x the greedy time on a CPU (README); --beam-size 1 for greedy
DEFAULT_LM_BEAM = 16
# and with a warp ensemble (speech.asr.recognizer, vtln=(...)): on the unseen
# MBROLA tuning voices 37.96 -> 35.83 % WER (beam 16 + LM, full context) and
# 43.59 -> 41.48 % streaming, the held-out test set 9.04 -> 8.89 %, for three
# encoder passes (README, "warp ensemble"); --vtln 1 for one pass
DEFAULT_ENSEMBLE = (0.85, 1.0, 1.15)


def _int_at_least(minimum: int):
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _number_within(low: float, high: float, what: str):
    """An argparse type: a number within ``low..high`` (NaN is not), else
    "'TEXT' is not WHAT"."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


def add_lm_arguments(parser: argparse.ArgumentParser) -> None:
    """The word language model options of beam search (transcribe, evaluate)."""
    from speech.asr.lm import (
        DEFAULT_LM_WEIGHT,
        DEFAULT_OOV_PENALTY,
        DEFAULT_WORD_BONUS,
    )

    parser.add_argument(
        "--lm",
        default="auto",
        help="ARPA word n-gram model for beam search; 'auto': the model "
        "folder's lm.arpa.gz if it has one; 'none': no LM",
    )
    parser.add_argument(
        "--lm-weight",
        type=float,
        default=DEFAULT_LM_WEIGHT,
        help="weight of ln P(word | history)",
    )
    parser.add_argument(
        "--word-bonus", type=float, default=DEFAULT_WORD_BONUS, help="score per word"
    )
    parser.add_argument(
        "--oov-penalty",
        type=_number_within(0.0, math.inf, "a number of 0 or more"),
        default=DEFAULT_OOV_PENALTY,
        help="score taken per letter of a word the LM does not know",
    )


def _vtln(text: str) -> float | str | tuple[float, ...]:
    from speech.asr.recognizer import parse_vtln, vtln_error

    value = parse_vtln(text)
    if value is None:
        raise argparse.ArgumentTypeError(vtln_error(text))
    return value


def add_backend_argument(parser: argparse.ArgumentParser, gpu: str) -> None:
    """``--backend auto|torch|onnx`` of a command that loads one model
    (``speech.backends.choose_backend`` resolves auto)."""
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help=f"auto (default): {gpu}ONNX Runtime on the CPU where the model "
        "has an export (speech/models/onnx for the shipped one, which "
        "install.sh builds; or --model names an export), else PyTorch",
    )


def add_vtln_argument(
    parser: argparse.ArgumentParser, default: float | tuple[float, ...] = 1.0
) -> None:
    """Vocal tract length normalisation (transcribe, serve, evaluate, the
    benchmarks): a factor, "auto" or a warp ensemble."""
    factors = default if isinstance(default, tuple) else (default,)
    shown = ",".join(f"{w:g}" for w in factors)
    parser.add_argument(
        "--vtln",
        type=_vtln,
        default=default,
        metavar="auto|FACTOR|F1,F2,...",
        help="warp the features' frequency axis: a number fixes the factor "
        "(1: none; above 1 suits voices deeper than the training voices); "
        "'auto' picks, for each file, the factor (0.8-1.3) the model is most "
        "confident with on its first minute (six encoder passes over it); "
        "several factors, e.g. 0.85,1,1.15, make a warp ensemble: the audio "
        "is encoded under each and the posteriors averaged, one encoder pass "
        f"per factor, for voices unlike the training voices (default {shown})",
    )


def add_edge_padding_argument(parser: argparse.ArgumentParser) -> None:
    """Silence added around each input (transcribe, evaluate)."""
    from speech.asr.config import MAX_EDGE_PADDING

    parser.add_argument(
        "--edge-padding",
        type=_number_within(
            0.0, MAX_EDGE_PADDING, f"a duration within 0..{MAX_EDGE_PADDING:g} s"
        ),
        nargs=2,
        metavar=("BEFORE", "AFTER"),
        help="seconds of silence added before and after each input (default: "
        "the model's: 0 and 0.64 for the shipped one; 0 0: none)",
    )


def lm_options(args: argparse.Namespace) -> dict:
    """``load_recognizer`` keywords from ``add_lm_arguments``' options."""
    return {
        "lm": None if args.lm == "none" else args.lm,
        "lm_weight": args.lm_weight,
        "word_bonus": args.word_bonus,
        "oov_penalty": args.oov_penalty,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speech",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True)

    t = commands.add_parser("transcribe", help="speech to text for files of any length")
    t.add_argument("files", nargs="*", help="audio files (any format soundfile reads)")
    t.add_argument(
        "--list",
        dest="manifest",
        help="a TSV (path first) or JSONL ('audio' key) list of files",
    )
    t.add_argument("--format", choices=FORMATS, default="txt")
    t.add_argument(
        "--output-dir",
        help="write <name>.<format> files here (resumable: done files are skipped)",
    )
    t.add_argument(
        "--overwrite", action="store_true", help="redo files whose output exists"
    )
    t.add_argument("--model", help="model folder (default: the shipped English model)")
    add_backend_argument(t, "PyTorch on a GPU, else ")
    t.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:1 (default: cuda when available)",
    )
    t.add_argument(
        "--chunk-size", type=_int_at_least(0), help="encoder frames (80 ms) per chunk"
    )
    t.add_argument("--left-context", type=_int_at_least(0))
    t.add_argument("--right-context", type=_int_at_least(0))
    t.add_argument(
        "--beam-size",
        type=_int_at_least(1),
        default=None,
        help="1: greedy; more: prefix beam search with the word LM (default: "
        f"{DEFAULT_LM_BEAM} when there is an LM, as with the shipped model; "
        "else 1)",
    )
    add_lm_arguments(t)
    add_vtln_argument(t, DEFAULT_ENSEMBLE)
    add_edge_padding_argument(t)
    t.add_argument(
        "--batch-seconds", type=float, default=1800.0, help="audio per masked batch"
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    s = commands.add_parser("synthesize", help="text to speech")
    s.add_argument(
        "text", nargs="?", help="text to speak ('-' or omitted: read standard input)"
    )
    s.add_argument("-o", "--output", help="WAV file to write (default: speech.wav)")
    s.add_argument(
        "--stream",
        action="store_true",
        help="write raw 16-bit PCM to stdout as it is made",
    )
    s.add_argument("--pace", type=float, default=1.0, help="speaking rate, >1 faster")
    s.add_argument("--pitch", type=float, default=0.0, help="pitch shift in semitones")
    s.add_argument("--volume", type=float, default=1.0, help="output gain")
    s.add_argument("--model", help="voice folder (default: the shipped voice)")
    add_backend_argument(s, "")
    s.add_argument("--device", default="cpu")

    v = commands.add_parser(
        "serve", help="WebSocket + HTTP server for streaming ASR and TTS"
    )
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--asr-model")
    v.add_argument("--tts-model")
    v.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="onnx: ONNX Runtime on the graphs `speech export onnx` made "
        "(speech/models/onnx, which install.sh builds, unless --asr-model/"
        "--tts-model name others); on CPU it carries more live sessions "
        "(README, Server load). auto (default): onnx on CPU where every model "
        "served has such an export, torch otherwise",
    )
    v.add_argument("--device", default="cpu")
    add_vtln_argument(v)
    v.add_argument(
        "--rescore",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="endpoint rescoring: each segment's final decoded again with the "
        "whole segment in view (default on; sessions may say otherwise)",
    )
    v.add_argument(
        "--max-rescore-seconds",
        type=float,
        default=30.0,
        help="audio of segments rescored per batched pass (the rest waits)",
    )
    v.add_argument("--max-sessions", type=int, default=200)
    v.add_argument(
        "--token",
        default=os.environ.get("SPEECH_TOKEN"),
        help="require 'Authorization: Bearer TOKEN'",
    )
    v.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        help="allowed browser Origin (repeatable)",
    )
    v.add_argument("--idle-timeout", type=float, default=60.0)
    v.add_argument("--max-session-seconds", type=float, default=3600.0)
    v.add_argument(
        "--max-frame-bytes", type=int, default=1 << 20, help="largest WebSocket message"
    )
    v.add_argument(
        "--max-text-chars", type=int, default=4096, help="longest synthesis request"
    )
    v.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    v.add_argument(
        "--batch-wait",
        type=float,
        default=0.005,
        help="seconds to gather streams before a batched step",
    )
    v.add_argument("--log-format", choices=("json", "text"), default="json")
    v.add_argument("--no-asr", dest="asr", action="store_false", help="no recognition")
    v.add_argument("--no-tts", dest="tts", action="store_false", help="no synthesis")

    c = commands.add_parser("client", help="talk to a running server")
    cs = c.add_subparsers(dest="client_command", required=True)
    ca = cs.add_parser("asr", help="stream a file to the server and print results")
    ca.add_argument("file")
    ca.add_argument("--url", default="ws://127.0.0.1:8000/asr")
    ca.add_argument("--realtime", action="store_true", help="send at real-time pace")
    ca.add_argument("--token", default=os.environ.get("SPEECH_TOKEN"))
    ca.add_argument("--json", action="store_true", help="print every message as JSON")
    ca.add_argument(
        "--beam-size", type=int, help="the session's beam (default: the server's)"
    )
    ca.add_argument(
        "--vtln",
        type=_vtln,
        metavar="FACTOR|F1,F2,...",
        help="the session's VTLN warp factor or warp ensemble (default: the server's)",
    )
    ca.add_argument(
        "--rescore",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="endpoint rescoring of the finals (default: the server's)",
    )
    ct = cs.add_parser("tts", help="synthesize through the server")
    ct.add_argument("text")
    ct.add_argument("-o", "--output", default="speech.wav")
    ct.add_argument("--url", default="ws://127.0.0.1:8000/tts")
    ct.add_argument("--token", default=os.environ.get("SPEECH_TOKEN"))
    ct.add_argument("--voice", help="voice name (default: the server's default)")
    ct.add_argument("--pace", type=float, help="speaking rate, >1 faster")
    ct.add_argument("--pitch", type=float, help="pitch shift in semitones")

    e = commands.add_parser("export", help="export models")
    es = e.add_subparsers(dest="export_command", required=True)
    eo = es.add_parser("onnx", help="export ASR and TTS to ONNX")
    eo.add_argument("--model", help="ASR model folder (default: shipped)")
    eo.add_argument("--tts-model", help="TTS voice folder (default: shipped)")
    eo.add_argument("--out", required=True)
    eo.add_argument(
        "--int8",
        action="store_true",
        help="also write int8 dynamically quantised graphs",
    )
    eo.add_argument("--skip-tts", action="store_true")
    eo.add_argument("--skip-asr", action="store_true")
    return parser


# ---------------------------------------------------------------- transcribe


def _read_list(path: str) -> list[str]:
    files = []
    text = Path(path).read_text()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                files.append(str(json.loads(line)["audio"]))
            except (ValueError, KeyError):
                raise SystemExit(
                    f"speech: {path}:{number}: bad JSONL line (needs an 'audio' key)"
                ) from None
        else:
            files.append(line.split("\t")[0])
    return files


def _output_name(path: str, fmt: str) -> str:
    return f"{Path(path).stem}.{fmt}"


def _render(transcript, fmt: str) -> str:  # type: ignore[no-untyped-def]
    from speech.formats import to_json, to_srt, to_txt, to_vtt

    return {"txt": to_txt, "json": to_json, "srt": to_srt, "vtt": to_vtt}[fmt](
        transcript
    )


def transcribe_command(args: argparse.Namespace) -> int:
    from speech.asr.config import ChunkGeometry
    from speech.asr.recognizer import load_recognizer
    from speech.backends import gpu_present
    from speech.formats import write_text_atomic

    files = list(args.files)
    if args.manifest:
        files += _read_list(args.manifest)
    if not files:
        print(
            "speech transcribe: no input files (give FILE... or --list)",
            file=sys.stderr,
        )
        return 2
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        if not args.output_dir:
            print(
                "speech transcribe: --output-dir is required under torchrun",
                file=sys.stderr,
            )
            return 2
        files = files[rank::world]
    device = args.device
    if device is None:
        device = "cpu"
        if args.backend != "onnx" and gpu_present():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    out_dir = Path(args.output_dir) if args.output_dir else None
    todo = files
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        names = [_output_name(f, args.format) for f in files]
        if len(set(names)) != len(names):
            print(
                "speech transcribe: two inputs share an output name; rename them",
                file=sys.stderr,
            )
            return 2
        if not args.overwrite:
            todo = [
                f
                for f in files
                if not (out_dir / _output_name(f, args.format)).exists()
            ]
            skipped = len(files) - len(todo)
            if skipped:
                logging.getLogger("speech").info(
                    "skipping %d finished file(s)", skipped
                )
    try:
        recognizer = load_recognizer(
            args.model,
            backend=args.backend,  # auto: load_recognizer chooses for the device
            device=device,
            beam_size=args.beam_size or 1,
            vtln=args.vtln,
            edge_padding=args.edge_padding,
            **lm_options(args),
        )
    except (OSError, ValueError) as error:
        print(f"speech transcribe: cannot load model: {error}", file=sys.stderr)
        return 2
    if args.beam_size is None and recognizer.lm_source is not None:
        recognizer.beam_size = DEFAULT_LM_BEAM
    try:
        if recognizer.beam_size > 1:
            _ = recognizer.fusion  # reads the LM now: a bad one fails up front
    except (OSError, ValueError, UnicodeDecodeError) as error:
        print(
            f"speech transcribe: cannot load language model: {error}",
            file=sys.stderr,
        )
        return 2
    geometry = recognizer.config.offline
    if (
        args.chunk_size is not None
        or args.left_context is not None
        or args.right_context is not None
    ):
        geometry = ChunkGeometry(
            args.chunk_size if args.chunk_size is not None else geometry.chunk_size,
            args.left_context
            if args.left_context is not None
            else geometry.left_context,
            args.right_context
            if args.right_context is not None
            else geometry.right_context,
        )
    from speech.errors import SpeechError

    failed = 0
    progress = None
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(total=len(todo), unit="file", file=sys.stderr)
    for path, result in recognizer.transcribe_many(
        todo, geometry, max_batch_seconds=args.batch_seconds
    ):
        if progress is not None:
            progress.update(1)
        if isinstance(result, SpeechError):
            failed += 1
            print(f"error: {result}", file=sys.stderr)
            continue
        text = _render(result, args.format)
        if out_dir is not None:
            write_text_atomic(out_dir / _output_name(path, args.format), text)
        else:
            if len(files) > 1 and args.format != "json":
                print(f"==> {path} <==")
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            sys.stdout.flush()
    if progress is not None:
        progress.close()
    if failed:
        print(
            f"speech transcribe: {failed} of {len(todo)} file(s) failed",
            file=sys.stderr,
        )
    return 1 if failed else 0


# ---------------------------------------------------------------- synthesize


def synthesize_command(args: argparse.Namespace) -> int:
    text = args.text
    if text is None or text == "-":
        text = sys.stdin.read()
    if not text.strip():
        print("speech synthesize: empty text", file=sys.stderr)
        return 2
    from speech import load_synthesizer
    from speech.audio import float_to_pcm, write_wav_atomic

    try:
        synthesizer = load_synthesizer(
            args.model, backend=args.backend, device=args.device
        )
    except (OSError, ValueError) as error:
        print(f"speech synthesize: cannot load voice: {error}", file=sys.stderr)
        return 2
    options = {"pace": args.pace, "pitch_shift": args.pitch, "volume": args.volume}
    try:
        if args.stream:
            out = sys.stdout.buffer
            for chunk in synthesizer.stream(text, **options):
                out.write(float_to_pcm(chunk, "s16le"))
                out.flush()
            return 0
        audio = synthesizer.synthesize(text, **options)
    except ValueError as error:
        print(f"speech synthesize: {error}", file=sys.stderr)
        return 2
    output = args.output or "speech.wav"
    write_wav_atomic(output, audio, synthesizer.sample_rate)
    print(
        f"wrote {output} ({len(audio) / synthesizer.sample_rate:.2f} s)",
        file=sys.stderr,
    )
    return 0


# ------------------------------------------------------------------- others


def serve_command(args: argparse.Namespace) -> int:
    from server.app import run_server

    return run_server(args)


def client_command(args: argparse.Namespace) -> int:
    from server.client import main_asr, main_tts

    return main_asr(args) if args.client_command == "asr" else main_tts(args)


def export_command(args: argparse.Namespace) -> int:
    from export.onnx_export import main as export_main

    return export_main(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handlers = {
        "transcribe": transcribe_command,
        "synthesize": synthesize_command,
        "serve": serve_command,
        "client": client_command,
        "export": export_command,
    }
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
