"""WER per voice when the test audio's spectrum is frequency-warped
at decode time (vocal tract length normalisation, VTLN): a diagnosis of how
far a held-out voice lies from the training voices, and what choosing the
warp by the model's own confidence would gain.

    python benchmarks/asr_warp_sweep.py --manifest test.jsonl \
        --model speech/models/asr --warps 0.8,0.9,1,1.1,1.2,1.3

Every utterance is encoded once per warp factor (full context; the same
piecewise-linear warp that VTLP applies in training,
``speech.asr.frontend.warp_spectrum``; above 1 moves formants up, as from a
shorter vocal tract) and decoded, greedily or with ``--beam-size N`` and
the model folder's LM. The report gives, per voice and warp, the WER and
the mean per-frame best log-probability of the CTC output (the model's
confidence); then the WER when each utterance keeps the warp of highest
confidence among a subset (``--select``, one or more comma lists; with
``--margin M``, only where it beats the unwarped audio's confidence by more
than M, else the audio stays unwarped), when each
voice keeps the warp of highest mean confidence over its utterances (per
speaker, as one would per file), and the oracle (lowest WER per utterance,
not a reachable figure). ``--ensembles`` adds warp ensembles (comma lists of
the swept warps): each utterance decoded from the mean posterior of its
members' outputs, as ``Recognizer(vtln=(...))`` and ``speech transcribe
--vtln F1,F2,...`` decode; ``--geometry streaming`` sweeps the model's
streaming geometry instead of full context.

    python benchmarks/asr_warp_sweep.py --manifest tune.jsonl --beam-size 16 \
        --warps 0.8,0.85,0.9,1,1.1,1.15,1.2 \
        --ensembles 0.9,1,1.1 0.85,1,1.15 0.8,1,1.2 0.8,0.9,1,1.1,1.2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import machine, write_json  # noqa: E402

from recipes.common import read_manifest  # noqa: E402
from speech.asr.config import ChunkGeometry  # noqa: E402
from speech.asr.frontend import fbank_batch  # noqa: E402
from speech.asr.metrics import word_errors  # noqa: E402
from speech.asr.recognizer import (  # noqa: E402
    Recognizer,
    load_recognizer,
    mean_posterior,
    warp_confidence,
)
from speech.audio import load_audio  # noqa: E402
from speech.text.normalize import asr_transcript  # noqa: E402


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def sweep(
    manifest: str,
    model: str | None,
    warps: list[float],
    by: str = "voice",
    beam_size: int = 1,
    ensembles: Sequence[Sequence[float]] = (),
    geometry_name: str = "full",
) -> list[dict]:
    """One row per (utterance, warp): errors, words and confidence; and one
    per (utterance, ensemble), its ``ensemble`` the members' comma list."""
    recognizer = load_recognizer(model, lm="auto" if beam_size > 1 else None)
    geometry = {
        "full": ChunkGeometry(100000, 0, 0),  # as recipes.asr.evaluate
        "offline": recognizer.config.offline,
        "streaming": recognizer.config.streaming,
    }[geometry_name]
    rate = recognizer.sample_rate
    rows = []
    for index, utt in enumerate(read_manifest(manifest)):
        samples = load_audio(utt.audio, rate)
        # with the edge silence, as transcribe and evaluate decode
        waveform = torch.from_numpy(recognizer.pad(samples))[None]
        length = torch.tensor([waveform.shape[1]])
        features = []
        for warp in warps:
            feats, count = fbank_batch(
                waveform, length, recognizer.fbank_config, warp=torch.tensor([warp])
            )
            features.append(feats[0, : int(count[0])].numpy())
        reference = asr_transcript(utt.text)
        outputs = recognizer.backend.encode_list(features, geometry)
        base = {
            "utt": index,
            "speaker": utt.speaker if by == "voice" else engine(utt.speaker),
        }
        duration = len(samples) / rate
        by_warp = {w: np.asarray(o) for w, o in zip(warps, outputs, strict=True)}
        for warp, log_probs in by_warp.items():
            rows.append(
                base
                | score(recognizer, log_probs, duration, beam_size, reference)
                | {"warp": warp, "confidence": warp_confidence(log_probs)}
            )
        for members in ensembles:
            mean = mean_posterior([by_warp[w] for w in members])
            rows.append(
                base
                | score(recognizer, mean, duration, beam_size, reference)
                | {"warp": None, "ensemble": ",".join(f"{w:g}" for w in members)}
            )
    return rows


def score(
    recognizer: Recognizer,
    log_probs: np.ndarray,
    duration: float,
    beam_size: int,
    reference: str,
) -> dict:
    """Errors and reference words of one decoding of ``log_probs``."""
    text = recognizer.decode(log_probs, duration, beam_size).text
    errors, words = word_errors(reference, asr_transcript(text))
    return {"errors": errors, "words": words}


def engine(voice: str) -> str:
    """``espeak:en-us+f4`` -> ``espeak``: a dev set has hundreds of voices."""
    return voice.split(":", 1)[0]


def wer_by_speaker(chosen: list[dict]) -> dict[str, float]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in chosen:
        for key in (row["speaker"], "all"):
            totals[key][0] += row["errors"]
            totals[key][1] += row["words"]
    return {k: 100.0 * e / max(n, 1) for k, (e, n) in totals.items()}


def choose(rows: list[dict], subset: list[float], margin: float) -> dict:
    """The row of an utterance kept by confidence among ``subset``: the most
    confident, unless it beats warp 1 by ``margin`` or less."""
    best = max((r for r in rows if r["warp"] in subset), key=lambda r: r["confidence"])
    plain = next(r for r in rows if r["warp"] == 1.0)
    return best if best["confidence"] - plain["confidence"] > margin else plain


def summarise(
    rows: list[dict], selections: list[list[float]], margins: Sequence[float] = (0.0,)
) -> dict:
    ensemble_rows: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row.get("ensemble"):
            ensemble_rows[row["ensemble"]].append(row)
    rows = [row for row in rows if not row.get("ensemble")]
    by_utt: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        by_utt[row["utt"]].append(row)
    warps = sorted({row["warp"] for row in rows})
    per_warp = {}
    for warp in warps:
        chosen = [r for r in rows if r["warp"] == warp]
        conf: dict[str, list[float]] = defaultdict(list)
        for r in chosen:
            conf[r["speaker"]].append(r["confidence"])
        per_warp[warp] = {
            "wer": wer_by_speaker(chosen),
            "confidence": {k: float(np.mean(v)) for k, v in conf.items()},
        }
    strategies = {}
    for subset in selections:
        for margin in margins:
            name = "per utterance, most confident of " + ",".join(map(str, subset))
            if margin:
                name += f", margin {margin:g}"
            strategies[name] = wer_by_speaker(
                [choose(rs, subset, margin) for rs in by_utt.values()]
            )
    speaker_warp = {
        spk: max(warps, key=lambda w: per_warp[w]["confidence"][spk])
        for spk in per_warp[warps[0]]["confidence"]
    }
    strategies["per speaker, most confident of all"] = wer_by_speaker(
        [r for r in rows if r["warp"] == speaker_warp[r["speaker"]]]
    )
    for label, chosen in ensemble_rows.items():
        strategies[f"warp ensemble {label} (mean posterior)"] = wer_by_speaker(chosen)
    strategies["oracle per utterance (not reachable)"] = wer_by_speaker(
        [min(rs, key=lambda r: r["errors"]) for rs in by_utt.values()]
    )
    return {
        "per_warp": per_warp,
        "strategies": strategies,
        "speaker_warp": speaker_warp,
    }


def render(summary: dict) -> str:
    per_warp = summary["per_warp"]
    warps = sorted(per_warp)
    speakers = sorted(k for k in per_warp[warps[0]]["wer"] if k != "all") + ["all"]
    lines = [
        "| voice | " + " | ".join(f"warp {w:g}" for w in warps) + " |",
        "|---" * (len(warps) + 1) + "|",
    ]
    for spk in speakers:
        cells = []
        for w in warps:
            cell = f"{per_warp[w]['wer'][spk]:.1f}"
            if spk != "all":
                cell += f" ({per_warp[w]['confidence'][spk]:.3f})"
            cells.append(cell)
        lines.append(f"| {spk} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "WER % (mean best log-probability per frame). Warp chosen by confidence:",
        "",
        "| strategy | " + " | ".join(speakers) + " |",
        "|---" * (len(speakers) + 1) + "|",
    ]
    for name, wers in summary["strategies"].items():
        lines.append(
            f"| {name} | " + " | ".join(f"{wers[s]:.2f}" for s in speakers) + " |"
        )
    chosen = ", ".join(f"{k} {v:g}" for k, v in sorted(summary["speaker_warp"].items()))
    lines += ["", f"Per-speaker warps: {chosen}."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", help="JSONL manifest (not with --rows)")
    p.add_argument("--model", help="model folder (default: the shipped model)")
    p.add_argument("--warps", type=_floats, default=_floats("0.8,0.9,1,1.1,1.2,1.3"))
    p.add_argument(
        "--select",
        type=_floats,
        nargs="*",
        default=[],
        help="warp subsets for per-utterance selection (default: all warps)",
    )
    p.add_argument(
        "--by",
        choices=["voice", "engine"],
        default="voice",
        help="report per voice, or per engine (espeak, flite, ...) for sets of "
        "many voices; per-speaker selection then picks one warp per engine",
    )
    p.add_argument(
        "--beam-size",
        type=int,
        default=1,
        help="1: greedy; more: beam search with the model folder's LM (the "
        "warp is still chosen by the CTC confidence)",
    )
    p.add_argument(
        "--margin",
        type=_floats,
        default=[0.0],
        help="comma list: a warp other than 1 is kept only when its confidence "
        "beats warp 1's by more than this (default 0)",
    )
    p.add_argument(
        "--ensembles",
        type=_floats,
        nargs="*",
        default=[],
        help="warp ensembles (comma lists of --warps) decoded from the mean "
        "posterior of their members",
    )
    p.add_argument(
        "--geometry",
        choices=["full", "offline", "streaming"],
        default="full",
        help="chunk geometry: full context, or the model's offline or "
        "streaming default",
    )
    p.add_argument("--json", help="also write the rows and summary here")
    p.add_argument(
        "--rows",
        help="summarise the rows of an earlier --json instead of decoding "
        "(--manifest, --model, --warps and --beam-size are then not used)",
    )
    args = p.parse_args()
    if not args.manifest and not args.rows:
        p.error("give --manifest, or --rows from an earlier --json")
    started = time.perf_counter()
    if args.rows:
        rows = json.loads(Path(args.rows).read_text())["rows"]
        args.warps = sorted({r["warp"] for r in rows})
    if 1.0 not in args.warps:
        p.error("--warps must include 1 (the unwarped baseline)")
    for members in args.ensembles:
        if len(members) < 2 or not set(members) <= set(args.warps):
            p.error(f"--ensembles: {members} is not 2 or more of --warps")
    if not args.rows:
        rows = sweep(
            args.manifest,
            args.model,
            args.warps,
            args.by,
            args.beam_size,
            args.ensembles,
            args.geometry,
        )
    summary = summarise(rows, args.select or [args.warps], args.margin)
    print(render(summary))
    print(
        f"\n{len({r['utt'] for r in rows})} utterances x {len(args.warps)} warps "
        f"({args.geometry} context) "
        f"in {time.perf_counter() - started:.0f} s"
    )
    write_json(args.json, {"machine": machine(), "summary": summary, "rows": rows})


if __name__ == "__main__":
    main()
