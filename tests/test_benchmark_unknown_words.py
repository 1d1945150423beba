"""``benchmarks/asr_unknown_words.py`` counts the transcript words that the
word LM does not know, per report and geometry, from real files on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from speech.asr.lm import NgramLM

ROOT = Path(__file__).resolve().parent.parent


def _run(manifest: Path, lm: Path, report: Path) -> subprocess.CompletedProcess:
    script = ROOT / "benchmarks" / "asr_unknown_words.py"
    return subprocess.run(
        [sys.executable, str(script), "--manifest", str(manifest), "--lm", str(lm)]
        + [str(report)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_counts_words_outside_the_vocabulary(tmp_path) -> None:
    lm = NgramLM.estimate([s.split() for s in ["the cat sat", "a dog sat"]], order=2)
    lm.save(tmp_path / "lm.arpa")
    manifest = tmp_path / "test.jsonl"
    rows = [("a.wav", "The cat sat."), ("b.wav", "A dog, Rex, sat.")]
    manifest.write_text(
        "".join(
            json.dumps({"audio": a, "duration": 1.0, "text": t, "speaker": "x"}) + "\n"
            for a, t in rows
        )
    )
    texts = {"a.wav": "thecat sat", "b.wav": "a dog rex sat"}
    report = tmp_path / "run.json"
    report.write_text(
        json.dumps(
            {
                "hypotheses": {
                    str(tmp_path / a): {
                        "full": texts[a],
                        "offline": "the cat sat",
                        "streaming": "",
                    }
                    for a in texts
                }
            }
        )
    )
    done = _run(manifest, tmp_path / "lm.arpa", report)
    assert done.returncode == 0, done.stderr
    lines = {
        line.split("|")[2].strip(): line.split("|")[3:5]
        for line in done.stdout.splitlines()
        if line.startswith(f"| {report} ")
    }
    # "thecat" and "rex" are unknown; the references hold "rex" only
    assert [x.strip() for x in lines["full"]] == ["2", "1"]
    assert [x.strip() for x in lines["offline"]] == ["0", "1"]
    assert [x.strip() for x in lines["streaming"]] == ["0", "1"]

    report.write_text(json.dumps({"hypotheses": {}}))
    missing = _run(manifest, tmp_path / "lm.arpa", report)
    assert missing.returncode == 1
    assert "no transcript of" in missing.stderr
