"""How long the ASR trainer takes to read its corpus into memory: the
``AsrDataset`` it builds at start-up (every file read to 16-bit samples,
joined items planned), for a manifest whose rows are repeated to ``--rows``.

    python benchmarks/asr_data_load.py --manifest data/asr/dev.jsonl --rows 40000

The files are read once before timing, so the page cache holds them (as on
a GPU machine right after the corpus is built); each repeat builds the
dataset anew in this process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recipes.asr.data import AsrDataset  # noqa: E402
from recipes.common import read_manifest  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", type=Path, nargs="+", required=True)
    p.add_argument("--rows", type=int, default=40000, help="rows after repeating")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--join-fraction", type=float, default=0.3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    base = [u for path in args.manifest for u in read_manifest(path)]
    utterances = [base[i % len(base)] for i in range(args.rows)]
    for u in base:
        Path(u.audio).read_bytes()
    seconds = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        dataset = AsrDataset(
            utterances, [[1]] * len(utterances), join_fraction=args.join_fraction
        )
        seconds.append(time.perf_counter() - started)
        hours = float(dataset.durations[: len(utterances)].sum()) / 3600
        del dataset
    print(
        f"{args.rows} rows ({hours:.1f} h, {len(base)} distinct files): "
        + ", ".join(f"{s:.2f}" for s in seconds)
        + " s to build the trainer's dataset"
    )
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "seconds": seconds}))


if __name__ == "__main__":
    main()
