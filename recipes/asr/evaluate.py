"""Word error rate of a recognizer, per voice, for full context, the default
offline geometry and the default streaming geometry, plus long recordings.

    python -m recipes.asr.evaluate --model speech/models/asr \
        --manifest data/asr/test.jsonl --long-form data/asr/longform.jsonl

Short utterances are decoded with masked batching (``transcribe_many``);
the streaming column uses the streaming geometry (right context 0), whose
results equal the live ``RecognizerStream`` exactly (tests/test_recognizer.py).
Long recordings go through the block-by-block long-form path.

``--rescore`` adds two columns from live streams (``RecognizerStream``,
0.5 s pieces, endpointing on) with endpoint rescoring: ``live``, the
streaming pass's finals, and ``rescored``, the finals after the second pass
(each segment encoded again with the offline geometry). With
``--stream-long-form`` the long recordings are streamed that way too.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from recipes.common import Utterance, read_manifest
from speech.asr.config import ChunkGeometry
from speech.asr.metrics import word_error_rate, word_errors
from speech.asr.recognizer import (
    Recognizer,
    load_recognizer,
    transcript_from_events,
)
from speech.audio import load_audio
from speech.cli import (
    add_edge_padding_argument,
    add_lm_arguments,
    add_vtln_argument,
    lm_options,
)
from speech.text.normalize import asr_transcript

FULL = ChunkGeometry(100_000, 0, 0)


SENTENCE_MARGIN = 0.15  # seconds of the pause kept on each side of a cut


def long_form_segments(manifest: str) -> dict[str, list[dict]]:
    """Each long recording's sentence spans (the corpus builder's
    ``segments``: start, end, text), by audio path as ``read_manifest``
    resolves it; recordings without any are left out."""
    folder = Path(manifest).parent
    spans = {}
    with open(manifest, encoding="utf-8") as file:
        for line in file:
            if line.strip():
                row = json.loads(line)
                if row.get("segments"):
                    spans[str(folder / row["audio"])] = row["segments"]
    return spans


def sentence_pieces(
    samples: np.ndarray, segments: list[dict], sample_rate: int
) -> list[tuple[np.ndarray, str]]:
    """A long recording's sentences as (samples, text), cut at ``segments``
    with ``SENTENCE_MARGIN`` of the pauses around each."""
    pieces = []
    for segment in segments:
        start = max(0, int((segment["start"] - SENTENCE_MARGIN) * sample_rate))
        end = min(len(samples), int((segment["end"] + SENTENCE_MARGIN) * sample_rate))
        pieces.append((samples[start:end], segment["text"]))
    return pieces


def _wer(pairs) -> float:
    """Corpus WER (percent, 2 decimals) of (reference, hypothesis) texts,
    both normalised to transcript form."""
    return round(
        word_error_rate((asr_transcript(r), asr_transcript(h)) for r, h in pairs), 2
    )


STREAM_PIECE_SECONDS = 0.5  # audio per accept_waveform call when streaming


def _streamed(
    recognizer: Recognizer, samples: np.ndarray, rescore: bool = False
) -> tuple[str, str]:
    """``samples`` fed live to a ``RecognizerStream`` (streaming geometry,
    endpointing on) in ``STREAM_PIECE_SECONDS`` pieces: the text of the
    streaming pass's finals and of the finals (the same without
    ``rescore``)."""
    stream = recognizer.stream(rescore=rescore)
    events = []
    step = int(STREAM_PIECE_SECONDS * recognizer.sample_rate)
    for start in range(0, len(samples), step):
        events += stream.accept_waveform(samples[start : start + step])
    events += stream.finish()
    duration = len(samples) / recognizer.sample_rate
    final = transcript_from_events(events, duration).text
    if not rescore:
        return final, final
    first = " ".join(
        e.first_pass.text for e in events if e.first_pass and e.first_pass.text
    )
    return first, final


def stream_rows(
    recognizer: Recognizer,
    item: Utterance,
    samples: np.ndarray,
    segments: list[dict] | None,
    row: dict,
    rescore: bool = False,
) -> None:
    """Adds to ``row`` the WER of the recording streamed live and, with
    ``segments``, of its sentences streamed one by one (and the live text
    as ``stream_text``); with ``rescore``, after endpoint rescoring, and
    the streaming pass's WER as ``stream_first_pass_wer``."""
    first, text = _streamed(recognizer, samples, rescore)
    row["stream_wer"] = _wer([(item.text, text)])
    if rescore:
        row["stream_first_pass_wer"] = _wer([(item.text, first)])
    row["stream_text"] = text
    if segments:
        pieces = sentence_pieces(samples, segments, recognizer.sample_rate)
        row["stream_sentence_wer"] = _wer(
            (reference, _streamed(recognizer, piece, rescore)[1])
            for piece, reference in pieces
        )


def identical_share(report: dict, other_file: str) -> tuple[int, int]:
    """How many of ``report``'s transcripts (per input and geometry) equal
    those of another report (``--json`` of an earlier run), of how many
    both have."""
    other = json.loads(Path(other_file).read_text())["hypotheses"]
    same = total = 0
    for path, by_geometry in report["hypotheses"].items():
        for geometry, text in by_geometry.items():
            if geometry in other.get(path, {}):
                total += 1
                same += other[path][geometry] == text
    return same, total


def evaluate(args: argparse.Namespace) -> dict:
    recognizer = load_recognizer(
        args.model,
        backend=args.backend,
        device=args.device,
        beam_size=args.beam_size,
        vtln=args.vtln,
        edge_padding=args.edge_padding,
        **lm_options(args),
    )
    config = recognizer.config
    geometries = {
        "full": FULL,
        "offline": config.offline,
        "streaming": config.streaming,
    }
    utterances = read_manifest(args.manifest) if args.manifest else []
    if args.limit:
        utterances = utterances[: args.limit]
    reference = {u.audio: asr_transcript(u.text) for u in utterances}
    speaker = {u.audio: u.speaker for u in utterances}
    table: dict[str, dict[str, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0])
    )
    timing = {}
    hypotheses: dict[str, dict[str, str]] = defaultdict(dict)
    for name, geometry in geometries.items():
        started = time.monotonic()
        for path, result in recognizer.transcribe_many(
            [u.audio for u in utterances],
            geometry,
            max_batch_seconds=args.batch_seconds,
        ):
            if isinstance(result, Exception):
                print(f"error: {result}")
                continue
            hypotheses[path][name] = result.text
            errors, words = word_errors(reference[path], asr_transcript(result.text))
            for key in (speaker[path], "all"):
                table[key][name][0] += errors
                table[key][name][1] += words
        timing[name] = time.monotonic() - started
    columns = list(geometries)
    if args.rescore:
        columns += ["live", "rescored"]
        started = time.monotonic()
        for u in utterances:
            samples = load_audio(u.audio, recognizer.sample_rate)
            texts = _streamed(recognizer, samples, rescore=True)
            for name, text in zip(("live", "rescored"), texts, strict=True):
                hypotheses[u.audio][name] = text
                errors, words = word_errors(reference[u.audio], asr_transcript(text))
                for key in (u.speaker, "all"):
                    table[key][name][0] += errors
                    table[key][name][1] += words
        timing["live+rescored"] = time.monotonic() - started
    long_rows = []
    if args.long_form:
        segments = long_form_segments(args.long_form)
        for item in read_manifest(args.long_form):
            started = time.monotonic()
            result = recognizer.transcribe(item.audio, config.offline)
            elapsed = time.monotonic() - started
            hypotheses[item.audio]["long_form"] = result.text
            row = {
                "audio": Path(item.audio).name,
                "speaker": item.speaker,
                "minutes": round(result.duration / 60, 1),
                "wer": _wer([(item.text, result.text)]),
                "rtf": round(elapsed / max(result.duration, 1e-9), 4),
            }
            spans = segments.get(item.audio)
            if spans or args.stream_long_form:
                samples = load_audio(item.audio, recognizer.sample_rate)
            if spans:
                # The same sentences, cut from the same audio and decoded one
                # by one: the long-form path's own cost, voice and text equal.
                pieces = sentence_pieces(samples, spans, recognizer.sample_rate)
                row["sentence_wer"] = _wer(
                    (text, recognizer.transcribe(piece, config.offline).text)
                    for piece, text in pieces
                )
            if args.stream_long_form:
                stream_rows(recognizer, item, samples, spans, row, args.rescore)
                hypotheses[item.audio]["long_form_stream"] = row.pop("stream_text")
            long_rows.append(row)
    return {
        "table": table,
        "timing": timing,
        "long_form": long_rows,
        "geometries": {k: vars(v) for k, v in geometries.items()},
        "columns": columns,
        "latency_streaming_s": config.streaming.latency_seconds(config.num_layers),
        "vtln": args.vtln,
        "edge_padding": list(recognizer.edge_padding),
        "hypotheses": hypotheses,
    }


def render(report: dict) -> str:
    names = report.get("columns", list(report["geometries"]))
    lines = [
        "| voice | " + " | ".join(f"WER {n} %" for n in names) + " | words |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    table = report["table"]
    for voice in sorted(table, key=lambda v: (v == "all", v)):
        row = table[voice]
        cells = [f"{100 * row[n][0] / max(row[n][1], 1):.2f}" for n in names]
        label = f"**{voice}**" if voice == "all" else voice
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {row[names[0]][1]} |")
    out = "\n".join(lines)
    geometry = ", ".join(
        f"{n} C/L/R={g['chunk_size']}/{g['left_context']}/{g['right_context']}"
        for n, g in report["geometries"].items()
    )
    latency = report["latency_streaming_s"] * 1000
    out += (
        f"\n\nGeometries (80 ms frames): {geometry}; "
        f"streaming algorithmic latency {latency:.0f} ms."
    )
    if "rescored" in names:
        out += (
            " live: streamed live (streaming geometry, endpointing on), the "
            "finals of the streaming pass; rescored: the same streams' finals "
            "after endpoint rescoring (offline geometry, per segment)."
        )
    if "edge_padding" in report:
        before, after = report["edge_padding"]
        out += f" Edge silence: {before:g} s before, {after:g} s after."
    vtln = report.get("vtln", 1.0)
    if isinstance(vtln, list | tuple):
        out += (
            f" VTLN: warp ensemble {', '.join(f'{w:g}' for w in vtln)} (mean "
            "posterior, all geometries)."
        )
    elif vtln == "auto":
        out += " VTLN: auto (each file's own warp, all geometries)."
    elif vtln != 1.0:
        out += f" VTLN: {vtln:g} (all geometries)."
    if report["long_form"]:
        out += (
            "\n\n| long recording | voice | minutes | WER % | same sentences "
            "one by one, WER % | RTF |\n|---|---|---|---|---|---|\n"
        )
        out += "\n".join(
            f"| {r['audio']} | {r['speaker']} | {r['minutes']} "
            f"| {r['wer']:.2f} | {r.get('sentence_wer', '-')} | {r['rtf']} |"
            for r in report["long_form"]
        )
        rows = report["long_form"]
        if any("stream_wer" in r for r in rows):
            # (key, header, formatted to 2 decimals); rescored streams also
            # report their streaming pass
            rescored = any("stream_first_pass_wer" in r for r in rows)
            live = "streamed live, streaming pass, WER %"
            columns = [("stream_first_pass_wer", live, True)] if rescored else []
            columns += [
                (
                    "stream_wer",
                    "rescored, WER %" if rescored else "streamed live, WER %",
                    True,
                ),
                (
                    "stream_sentence_wer",
                    "same sentences streamed one by one, "
                    + ("rescored, " if rescored else "")
                    + "WER %",
                    False,
                ),
            ]
            out += "\n\n| long recording | " + " | ".join(h for _, h, _ in columns)
            out += " |\n|---|" + "---|" * len(columns) + "\n"
            out += "\n".join(
                f"| {r['audio']} | "
                + " | ".join(
                    f"{r[key]:.2f}" if fixed else str(r.get(key, "-"))
                    for key, _, fixed in columns
                )
                + " |"
                for r in rows
            )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", default=None, help="model folder (default: the shipped model)"
    )
    p.add_argument(
        "--manifest", help="JSONL manifest or LibriSpeech folder of short utterances"
    )
    p.add_argument("--long-form", help="JSONL manifest of long recordings")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--beam-size", type=int, default=1)
    add_lm_arguments(p)
    add_vtln_argument(p)
    add_edge_padding_argument(p)
    p.add_argument("--batch-seconds", type=float, default=600.0)
    p.add_argument("--limit", type=int, default=0, help="first N utterances only")
    p.add_argument(
        "--stream-long-form",
        action="store_true",
        help="also stream each long recording live, and its sentences one by one",
    )
    p.add_argument(
        "--rescore",
        action="store_true",
        help="also stream every utterance live with endpoint rescoring (columns "
        "live and rescored; long recordings too with --stream-long-form)",
    )
    p.add_argument("--json", help="also write the report as JSON here")
    p.add_argument(
        "--compare",
        metavar="JSON",
        help="count the transcripts identical to an earlier run's --json report",
    )
    args = p.parse_args(argv)
    report = evaluate(args)
    print(render(report))
    if args.compare:
        same, total = identical_share(report, args.compare)
        print(f"\n{same} of {total} transcripts identical to {args.compare}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
