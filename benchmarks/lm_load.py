"""What loading a word LM costs: time and peak memory of ``NgramLM.load``
parsing the ARPA file, and of a load from its parsed-arrays cache; plus
``speech transcribe FILE --beam-size 16`` end to end, cold and warm.

    python benchmarks/lm_load.py --lm speech/models/asr/lm.arpa.gz \
        --audio some.wav

Each measurement runs in a fresh Python process (peak RSS is the process's
``ru_maxrss``: the interpreter, numpy and the table), with its own empty
cache folder (``SPEECH_CACHE_DIR``), so nothing a run leaves behind helps the
next one except the cache the warm run is meant to read.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOAD = """
import json, resource, sys, time
from speech.asr.lm import NgramLM
started = time.perf_counter()
lm = NgramLM.load(sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "ngrams": len(lm.entries),
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def load_once(lm: Path, cache: str) -> dict:
    env = {**os.environ, "SPEECH_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", LOAD, str(lm)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def transcribe_once(audio: Path, cache: str) -> dict:
    env = {**os.environ, "SPEECH_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "speech.cli", "transcribe", str(audio)]
    command += ["--beam-size", "16"]
    started = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, check=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": seconds, "rss_mb": peak / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lm", type=Path, default=ROOT / "speech/models/asr/lm.arpa.gz")
    p.add_argument("--audio", type=Path, help="also time speech transcribe")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        rows.append({"what": "parse, no cache", **load_once(args.lm, "")})
        rows.append({"what": "parse + write cache", **load_once(args.lm, cache)})
        rows.append({"what": "from cache", **load_once(args.lm, cache)})
        files = list(Path(cache).glob("*.npz"))
        cache_mb = sum(f.stat().st_size for f in files) / 1e6
    if args.audio:
        with tempfile.TemporaryDirectory() as cache:
            cold = transcribe_once(args.audio, cache)
            warm = transcribe_once(args.audio, cache)
        rows.append({"what": "speech transcribe --beam-size 16, cold", **cold})
        rows.append({"what": "speech transcribe --beam-size 16, warm", **warm})
    print(
        f"{args.lm} ({args.lm.stat().st_size / 1e6:.1f} MB), cache file "
        f"{cache_mb:.1f} MB"
    )
    print("| what | seconds | peak RSS MB |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['what']} | {row['seconds']:.2f} | {row['rss_mb']:.0f} |")
    print(
        "(transcribe's peak RSS is the largest of the child processes so far)"
        if args.audio
        else ""
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
