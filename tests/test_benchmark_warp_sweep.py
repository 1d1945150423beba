"""``benchmarks/asr_warp_sweep.py --ensembles``: an ensemble's row is what
the recognizer decodes with that warp ensemble, and the summary reports it
beside the per-warp and confidence-chosen figures."""

from __future__ import annotations

import importlib
import json

import pytest

from speech.asr.metrics import word_errors
from speech.asr.recognizer import load_recognizer
from speech.audio import load_audio
from speech.text.normalize import asr_transcript


@pytest.fixture
def sweep_module(monkeypatch):
    monkeypatch.syspath_prepend("benchmarks")
    return importlib.import_module("asr_warp_sweep")


def test_ensemble_rows_are_the_recognizers_decoding(
    sweep_module, model_dir, speech_file, tmp_path
) -> None:
    samples = load_audio(speech_file, 16000)
    plain = load_recognizer(model_dir, lm=None)
    streaming = plain.config.streaming  # where the tiny model's text moves
    # the reference is the one-pass transcript: warp 1's row has no errors
    reference = plain.transcribe(samples, streaming).text
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"audio": str(speech_file), "text": reference, "speaker": "slt"})
        + "\n"
    )
    warps, ensemble = [0.85, 1.0, 1.2, 1.5], [1.2, 1.5]
    rows = sweep_module.sweep(
        str(manifest),
        str(model_dir),
        warps,
        ensembles=[ensemble, [0.85, 1.2]],
        geometry_name="streaming",
    )
    assert [r["warp"] for r in rows] == [*warps, None, None]
    assert [r.get("ensemble") for r in rows[-2:]] == ["1.2,1.5", "0.85,1.2"]
    recognizer = load_recognizer(model_dir, lm=None, vtln=tuple(ensemble))
    text = recognizer.transcribe(samples, streaming).text
    errors, words = word_errors(asr_transcript(reference), asr_transcript(text))
    assert rows[1]["errors"] == 0 and errors > 0  # the ensemble reads otherwise
    assert (rows[-2]["errors"], rows[-2]["words"]) == (errors, words)
    summary = sweep_module.summarise(rows, [warps])
    assert sorted(summary["per_warp"]) == warps  # ensemble rows kept apart
    strategy = summary["strategies"]["warp ensemble 1.2,1.5 (mean posterior)"]
    assert strategy["slt"] == pytest.approx(100.0 * errors / words)
    assert "warp ensemble 0.85,1.2 (mean posterior)" in sweep_module.render(summary)
