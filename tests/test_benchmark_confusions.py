"""``benchmarks/asr_confusions.py``: substitutions per voice from an eval
report, with the ones that put a sh or ch where the reference has none."""

from __future__ import annotations

import importlib
import json

import pytest


@pytest.fixture
def module(monkeypatch):
    monkeypatch.syspath_prepend("benchmarks")
    return importlib.import_module("asr_confusions")


def test_counts_per_voice_and_palatal_substitutions(module, tmp_path, capsys):
    manifest = tmp_path / "test.jsonl"
    rows = [
        {"audio": "a.wav", "text": "So sad, it's such a day.", "speaker": "x"},
        {"audio": "b.wav", "text": "She sells shells", "speaker": "y"},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "r.json"
    report.write_text(
        json.dumps(
            {
                "hypotheses": {
                    str(tmp_path / "a.wav"): {"full": "show shd it such a day extra"},
                    str(tmp_path / "b.wav"): {"full": "see sells shells"},
                    "c.wav": {"full": "not listed"},
                }
            }
        )
    )
    assert module.main(["--report", str(report), "--manifest", str(manifest)]) == 0
    out = capsys.readouterr().out
    # x: so -> show, sad -> shd (palatal), it's -> it (not), + one insertion
    assert "| x | 6 | 3 | 2 | 0 | 1 |" in out
    # y: she -> see is a substitution, but not toward sh/ch
    assert "| y | 3 | 1 | 0 | 0 | 0 |" in out
    assert "so -> show (1)" in out
    assert "1 hypotheses not in the manifest" in out
    with pytest.raises(SystemExit):
        module.main(["--report", str(manifest), "--manifest", str(manifest)])
    assert "not an evaluate --json report" in capsys.readouterr().err
