"""Probe sets for the ASR model: a manifest's audio changed one known way, so
that the eval command can say how much that change costs a model. It is how
the held-out flite voice ``rms``'s spectral shape was ruled out as the reason
it reads worse (the training voices coloured to its shape lose 0.2 point),
and how the vocoder resynthesis (``recipes.asr.augment.revoice``) was checked
to keep speech readable.

    python benchmarks/asr_probe_audio.py --manifest dev.jsonl --out /tmp/shape \
        --eq "0:3,250:3,750:-12,1500:-8,2500:-2,3500:3,5000:0,8000:0"
    python benchmarks/asr_probe_audio.py --manifest dev.jsonl --out /tmp/rv --revoice
    python benchmarks/asr_probe_audio.py --manifest dev.jsonl --out /tmp/fs \
        --fricative-shift 0.7
    python -m recipes.asr.evaluate --model speech/models/asr \
        --manifest /tmp/shape/dev.jsonl --vtln 1

``--eq`` takes gains in dB at frequencies in Hz (``HZ:DB,...``), joined
linearly in log frequency and applied as one zero-phase filter over the
whole utterance (the training EQ's, ``recipes.asr.augment.apply_eq``);
``--revoice`` resynthesises each utterance with parameters drawn from a
generator seeded by its line number; ``--fricative-shift`` moves the noise
of fricatives by one factor for every utterance
(``recipes.asr.augment.shift_fricatives``). Either way the level is
kept, and the output manifest (same name, in ``--out``) keeps every field
but the audio path. An unreadable file is reported in one line and left
out; the rest go on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recipes.asr.augment import apply_eq, revoice, shift_fricatives  # noqa: E402


def parse_curve(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``"0:3,750:-12,8000:0"`` -> (frequencies, gains in dB), ascending."""
    try:
        points = sorted(
            (float(f), float(g)) for f, g in (p.split(":") for p in text.split(","))
        )
    except ValueError:
        raise ValueError(f"--eq {text!r}: expected HZ:DB,HZ:DB,...") from None
    if len(points) < 2:
        raise ValueError(f"--eq {text!r}: need at least two points")
    return np.array([f for f, _ in points]), np.array([g for _, g in points])


def apply_curve(
    samples: np.ndarray, rate: int, freqs: np.ndarray, gains_db: np.ndarray
) -> np.ndarray:
    """The curve as the training EQ's filter (``recipes.asr.augment.apply_eq``),
    level kept."""
    out = apply_eq(samples, rate, freqs, gains_db).astype(np.float64)
    power = np.mean(out**2)
    if power > 0:
        out *= np.sqrt(np.mean(samples.astype(np.float64) ** 2) / power)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    change = p.add_mutually_exclusive_group(required=True)
    change.add_argument("--eq", help="HZ:DB,HZ:DB,... (see above)")
    change.add_argument("--revoice", action="store_true")
    change.add_argument(
        "--fricative-shift",
        type=float,
        metavar="FACTOR",
        help="move fricative noise along frequency by FACTOR (voiced frames stay)",
    )
    args = p.parse_args(argv)
    curve = None
    if args.eq:
        try:
            curve = parse_curve(args.eq)
        except ValueError as error:
            p.error(str(error))
    audio_dir = args.out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    written = failed = 0
    rows = []
    for number, line in enumerate(args.manifest.read_text().splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        source = Path(row["audio"])
        if not source.is_absolute():
            source = args.manifest.parent / source
        try:
            samples, rate = sf.read(source, dtype="float32", always_2d=False)
        except (OSError, RuntimeError) as error:
            print(f"skipped {source}: {error}", file=sys.stderr)
            failed += 1
            continue
        if samples.ndim > 1:
            samples = samples.mean(axis=1)
        if curve is not None:
            changed = apply_curve(samples, rate, *curve)
        elif args.fricative_shift is not None:
            changed = shift_fricatives(
                samples, np.random.default_rng(number), rate, args.fricative_shift
            )
        else:
            changed = revoice(samples, np.random.default_rng(number), rate)
        target = audio_dir / f"{number:06d}.wav"
        sf.write(target, np.clip(changed, -0.999, 0.999), rate, subtype="PCM_16")
        rows.append({**row, "audio": str(target.relative_to(args.out))})
        written += 1
    manifest = args.out / args.manifest.name
    partial = manifest.with_suffix(".part")
    partial.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(partial, manifest)
    print(
        f"{written} utterances -> {manifest}"
        + (f" ({failed} skipped)" if failed else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
