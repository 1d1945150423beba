"""`speech transcribe` and `speech synthesize` as users run them, on each back
end: wall time of the whole command (start-up and model loading included, as
a user waits for them), peak resident memory, and whether the back ends gave
the same output.

    python benchmarks/cli_backends.py transcribe --audio long.wav [more.wav ...]
    python benchmarks/cli_backends.py transcribe --audio a.wav --args "--beam-size 1"
    python benchmarks/cli_backends.py synthesize --text "Some sentences to speak."

Each (back end, repeat) runs ``python -m speech.cli transcribe FILES --backend
B --device cpu --quiet --output-dir DIR`` (or ``synthesize TEXT --backend B -o
OUT.wav``) in a fresh process, started by a small launcher process that
reads its peak RSS from ``wait4``. The best wall time of ``--repeats`` runs
is reported, with that run's peak RSS.
``--args`` adds options to every run (e.g. ``--vtln 1`` or ``--beam-size
1``); without it the commands' defaults apply (for transcribe with the shipped
model: beam 16 + the shipped LM + the warp ensemble). Transcripts must be
identical; synthesized audio is compared sample by sample (largest difference
in 16-bit steps).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import machine, markdown_table, write_json

# Linux folds the forking process's resident size into its child's peak, so
# the command is started by a small Python process, not by this one
LAUNCHER = """import json, os, subprocess, sys
process = subprocess.Popen(sys.argv[2:], stderr=subprocess.PIPE, text=True)
stderr = process.stderr.read()
_, status, usage = os.wait4(process.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump([os.waitstatus_to_exitcode(status), usage.ru_maxrss, stderr], out)
"""


def run_once(command: list[str], scratch: Path) -> tuple[float, float]:
    """(wall s, peak RSS MiB) of one command, which must succeed."""
    report = scratch / "launch.json"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", LAUNCHER, str(report), *command], check=True)
    wall = time.perf_counter() - start
    code, peak_kib, stderr = json.loads(report.read_text())
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    return wall, peak_kib / 1024.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("transcribe", "synthesize"))
    p.add_argument("--audio", nargs="+", help="transcribe: files")
    p.add_argument("--text", help="synthesize: the text")
    p.add_argument("--backends", default="torch,onnx")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--args", default="", help="more options for the command")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.command == "transcribe" and not args.audio:
        p.error("transcribe needs --audio")
    if args.command == "synthesize" and not args.text:
        p.error("synthesize needs --text")
    extra = shlex.split(args.args)
    cli = [sys.executable, "-m", "speech.cli", args.command]
    rows, outputs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            best = None
            for repeat in range(args.repeats):
                out = Path(tmp) / f"{backend}-{repeat}"
                if args.command == "transcribe":
                    out.mkdir()
                    command = [*cli, *args.audio, "--backend", backend,
                               "--device", "cpu", "--quiet", "--output-dir",
                               str(out), *extra]  # fmt: skip
                else:
                    out = out.with_suffix(".wav")
                    command = [*cli, args.text, "--backend", backend, "-o",
                               str(out), *extra]  # fmt: skip
                wall, rss = run_once(command, Path(tmp))
                if best is None or wall < best[0]:
                    best = (wall, rss)
                if args.command == "transcribe":
                    outputs[backend] = {
                        f.name: f.read_text() for f in sorted(out.glob("*.txt"))
                    }
                else:
                    outputs[backend], rate = sf.read(out, dtype="int16")
            rows.append(
                {
                    "backend": backend,
                    "wall s": round(best[0], 2),
                    "peak RSS MiB": round(best[1]),
                }  # fmt: skip
            )
        if args.command == "transcribe":
            seconds = sum(sf.info(f).duration for f in args.audio)
        else:
            seconds = len(next(iter(outputs.values()))) / rate
    reference = next(iter(outputs.values()))
    for row in rows:
        row["RTF"] = f"{row['wall s'] / seconds:.4f}"
        got = outputs[row["backend"]]
        if args.command == "transcribe":
            row["same output"] = "yes" if got == reference else "NO"
        elif got.shape != reference.shape:
            row["same output"] = f"NO: {len(got)} samples, not {len(reference)}"
        else:
            steps = int(np.abs(got.astype(np.int32) - reference).max(initial=0))
            row["same output"] = "yes" if steps == 0 else f"within {steps} steps"
    what = f"{len(args.audio)} file(s)" if args.audio else "speech"
    print(
        f"{args.command}: {what}, {seconds:.1f} s of audio; options: "
        f"{args.args or '(defaults)'}; {json.dumps(machine())}"
    )
    columns = ["backend", "wall s", "RTF", "peak RSS MiB", "same output"]
    print(markdown_table(rows, columns))
    write_json(args.json, {"rows": rows, "audio_seconds": seconds, **machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
