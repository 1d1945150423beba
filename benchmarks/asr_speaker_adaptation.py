"""Unsupervised speaker adaptation in two passes, voice by voice: an
experiment (the library does not do this yet).

    python benchmarks/asr_speaker_adaptation.py --manifest tune.jsonl \\
        --out /tmp/adapt [--limit 500] [--voices mbrola:us1 ...]

For each voice of the manifest (its first ``--limit`` rows):

1. the first pass: its utterances decoded with beam 16 and the word LM at
   full context, one warp (no reference text is read from here on);
2. a copy of the model fine-tuned on those transcripts: all weights, AdamW
   at ``--lr`` (1e-4), ``--epochs`` (3) of ``--batch-seconds`` (60 s)
   batches, SpecAugment (two frequency and two time masks), each batch at
   full context, in the offline geometry or a streaming one (chunk 6 or 16,
   left 64), so that the adapted weights still stream;
3. the unadapted and the adapted model read on the voice's utterances with
   ``recipes.asr.evaluate`` (``--vtln 1``; greedy, and beam 16 + LM): the
   mean of the three geometries and each geometry.

Prints one markdown row per voice and reading, and writes ``report.json``
in ``--out``. The adapted models stay in ``--out/VOICE/model``. It runs on
the CPU: on the 2-core dev machine the fine-tuning reads 13-18 s of audio
per second.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recipes.asr import evaluate  # noqa: E402
from speech.asr.config import ChunkGeometry  # noqa: E402
from speech.asr.model import AsrModel, load_model, save_model  # noqa: E402
from speech.asr.recognizer import Recognizer, load_recognizer  # noqa: E402
from speech.audio import load_audio  # noqa: E402
from speech.text.normalize import asr_transcript  # noqa: E402

FULL = ChunkGeometry(100000, 0, 0)
GEOMETRY_NAMES = ("full", "offline", "streaming")
# the geometries the fine-tuning draws from, one per batch (None: full context)
GEOMETRIES = [None, (64, 32, 64), (6, 64, 0), (6, 64, 0), (16, 64, 0)]


def first_pass(recognizer: Recognizer, paths: list[str]) -> dict[str, str]:
    """Beam 16 + LM transcripts at full context, by path."""
    out = {}
    for path, result in recognizer.transcribe_many(paths, geometry=FULL, beam_size=16):
        if hasattr(result, "text"):
            out[path] = result.text
        else:
            print(f"error: {path}: {result}", file=sys.stderr)
    return out


def spec_augment(
    x: torch.Tensor, fill: torch.Tensor, rng: random.Random
) -> torch.Tensor:
    """Two frequency masks of up to 10 bins and two time masks of up to 5 %
    of the frames; masked cells take ``fill`` (the feature mean)."""
    x = x.clone()
    frames, bins = x.shape
    for _ in range(2):
        width = rng.randint(0, 10)
        start = rng.randint(0, bins - width)
        x[:, start : start + width] = fill[start : start + width]
    for _ in range(2):
        width = rng.randint(0, max(1, int(0.05 * frames)))
        start = rng.randint(0, max(0, frames - width))
        x[start : start + width] = fill
    return x


def adapt(
    model: AsrModel,
    items: list[tuple[torch.Tensor, torch.Tensor, float]],
    epochs: int,
    lr: float,
    batch_seconds: float,
    seed: int = 0,
) -> dict[str, float]:
    """Fine-tune ``model`` in place on (features, token ids, seconds) items
    with the CTC loss; returns the steps taken, the seconds they took and
    the audio seconds read per second."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model.float().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    started, seconds, steps = time.monotonic(), 0.0, 0
    for _ in range(epochs):
        order = list(range(len(items)))
        rng.shuffle(order)
        batches: list[list[int]] = [[]]
        total = 0.0
        for i in order:
            if batches[-1] and total + items[i][2] > batch_seconds:
                batches.append([])
                total = 0.0
            batches[-1].append(i)
            total += items[i][2]
        for batch in batches:
            feats = [spec_augment(items[i][0], model.feature_mean, rng) for i in batch]
            lengths = torch.tensor([f.shape[0] for f in feats])
            padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
            geometry = rng.choice(GEOMETRIES)
            if geometry is None:
                geometry = (int(lengths.max()) // 8 + 1, 0, 0)
            log_probs, out_lengths = model(padded, lengths, *geometry)
            targets = [items[i][1] for i in batch]
            loss = F.ctc_loss(
                log_probs.transpose(0, 1),
                torch.cat(targets),
                out_lengths,
                torch.tensor([len(t) for t in targets]),
                blank=0,
                reduction="sum",
                zero_infinity=True,
            ) / len(batch)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            seconds += sum(items[i][2] for i in batch)
            steps += 1
    model.eval()
    elapsed = time.monotonic() - started
    return {"steps": steps, "seconds": elapsed, "audio_per_second": seconds / elapsed}


def read(model: str, manifest: Path, lm: str, beam: bool) -> dict:
    """``recipes.asr.evaluate`` of ``model`` on ``manifest`` (one warp):
    WER per geometry and their mean."""
    out = manifest.parent / "report.tmp.json"
    argv = ["--model", model, "--manifest", str(manifest), "--vtln", "1"]
    argv += ["--beam-size", "16", "--lm", lm] if beam else []
    with contextlib.redirect_stdout(io.StringIO()):
        evaluate.main([*argv, "--json", str(out)])
    rows = json.loads(out.read_text())["table"]["all"]
    out.unlink()
    return with_wers({g: rows[g] for g in GEOMETRY_NAMES})


def with_wers(counts: dict) -> dict:
    """{geometry: [errors, words]} -> the counts, each geometry's WER (%)
    and their mean."""
    wers = {g: 100.0 * e / max(n, 1) for g, (e, n) in counts.items()}
    return {
        "counts": counts,
        **wers,
        "mean": float(np.mean([wers[g] for g in GEOMETRY_NAMES])),
    }


def cells(wers: dict) -> str:
    """full / offline / streaming (mean), in %."""
    parts = " / ".join(f"{wers[g]:.2f}" for g in GEOMETRY_NAMES)
    return f"{parts} ({wers['mean']:.2f})"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "speech/models/asr"))
    p.add_argument("--manifest", required=True, help="JSONL manifest")
    p.add_argument("--out", required=True, help="folder for models and report.json")
    p.add_argument("--lm", default=None, help="ARPA LM (default: the model folder's)")
    p.add_argument("--voices", nargs="*", help="these voices only (default: all)")
    p.add_argument("--limit", type=int, default=0, help="first N rows only")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-seconds", type=float, default=60.0)
    args = p.parse_args(argv)
    lm = args.lm or str(Path(args.model) / "lm.arpa.gz")
    manifest = Path(args.manifest)
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line]
    rows = rows[: args.limit or None]
    for row in rows:
        row["audio"] = str((manifest.parent / row["audio"]).resolve())
    voices = args.voices or sorted({r["speaker"] for r in rows})
    out = Path(args.out)
    recognizer = load_recognizer(args.model, lm=lm, vtln=1.0)
    report = {"settings": vars(args), "voices": {}}
    print(
        "| voice | utterances | reading | unadapted full / offline / streaming (mean) "
        "| adapted | adapting s |"
    )
    print("|---|---|---|---|---|---|")
    for voice in voices:
        own = [r for r in rows if r["speaker"] == voice]
        if not own:
            print(f"error: no utterance of {voice} in {manifest}", file=sys.stderr)
            continue
        folder = out / voice.replace(":", "_")
        folder.mkdir(parents=True, exist_ok=True)
        voice_manifest = folder / "voice.jsonl"
        voice_manifest.write_text("".join(json.dumps(r) + "\n" for r in own))
        started = time.monotonic()
        hypotheses = first_pass(recognizer, [r["audio"] for r in own])
        first = time.monotonic() - started
        model = load_model(args.model, "cpu")
        items = []
        for r in own:
            text = asr_transcript(hypotheses.get(r["audio"], ""))
            if not text:
                continue
            samples = recognizer.pad(
                load_audio(Path(r["audio"]), recognizer.sample_rate)
            )
            items.append(
                (
                    torch.from_numpy(recognizer.features(samples)),
                    torch.tensor(model.tokenizer.encode(text)),
                    len(samples) / recognizer.sample_rate,
                )
            )
        pace = adapt(model, items, args.epochs, args.lr, args.batch_seconds)
        adapted = folder / "model"
        shutil.rmtree(adapted, ignore_errors=True)
        save_model(
            model,
            adapted,
            half=True,
            tokenizer_file=Path(args.model) / "tokenizer.model",
        )
        entry = {"utterances": len(own), "first_pass_s": first, "adapting": pace}
        for name, beam in (("greedy", False), ("beam 16 + LM", True)):
            base = read(args.model, voice_manifest, lm, beam)
            new = read(str(adapted), voice_manifest, lm, beam)
            entry[name] = {"unadapted": base, "adapted": new}

            print(
                f"| {voice} | {len(own)} | {name} | {cells(base)} | {cells(new)} "
                f"| {first + pace['seconds']:.0f} |",
                flush=True,
            )
        report["voices"][voice] = entry
    # all voices: errors and words summed over them
    entries = list(report["voices"].values())
    for name in ("greedy", "beam 16 + LM") if entries else ():
        pooled = {
            side: with_wers(
                {
                    g: [
                        sum(e[name][side]["counts"][g][k] for e in entries)
                        for k in (0, 1)
                    ]
                    for g in GEOMETRY_NAMES
                }
            )
            for side in ("unadapted", "adapted")
        }
        report.setdefault("all", {})[name] = pooled
        utterances = sum(e["utterances"] for e in entries)
        print(
            f"| **all** | {utterances} | {name} | {cells(pooled['unadapted'])} "
            f"| {cells(pooled['adapted'])} | |"
        )
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
