"""``benchmarks/asr_probe_audio.py``: a manifest's audio changed one known
way (a fixed EQ curve, or the vocoder resynthesis), written with a manifest
the eval command reads; a file that cannot be read is reported and skipped."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture
def probe(monkeypatch):
    monkeypatch.syspath_prepend("benchmarks")
    return importlib.import_module("asr_probe_audio")


def _tones(path, rate=16000):
    t = np.arange(rate) / rate
    x = 0.2 * np.sin(2 * np.pi * 250 * t) + 0.2 * np.sin(2 * np.pi * 1000 * t)
    sf.write(path, x.astype(np.float32), rate)
    return x


def _band_db(x, rate, hz):
    spectrum = np.abs(np.fft.rfft(x)) / (len(x) / 2)  # 1 Hz bins for 1 s
    return 20 * np.log10(spectrum[hz])


def test_eq_curve_is_applied_and_bad_files_are_skipped(probe, tmp_path, capsys):
    source = _tones(tmp_path / "a.wav")
    rows = [
        {"audio": "a.wav", "text": "one two", "speaker": "x", "duration": 1.0},
        {"audio": "missing.wav", "text": "three", "speaker": "x"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert (
        probe.main(
            [
                "--manifest",
                str(manifest),
                "--out",
                str(out),
                "--eq",
                "100:0,400:0,1000:-12,8000:-12",
            ]
        )
        == 0
    )
    printed = capsys.readouterr()
    assert "skipped" in printed.err and "missing.wav" in printed.err
    assert "1 utterances" in printed.out and "(1 skipped)" in printed.out
    written = [json.loads(line) for line in (out / "m.jsonl").read_text().splitlines()]
    assert len(written) == 1
    assert {k: v for k, v in written[0].items() if k != "audio"} == {
        k: v for k, v in rows[0].items() if k != "audio"
    }
    changed, rate = sf.read(out / written[0]["audio"])
    assert len(changed) == len(source)
    before = _band_db(source, rate, 1000) - _band_db(source, rate, 250)
    after = _band_db(changed, rate, 1000) - _band_db(changed, rate, 250)
    assert after - before == pytest.approx(-12.0, abs=0.5)
    # the level is kept
    assert np.sqrt(np.mean(changed**2)) == pytest.approx(
        np.sqrt(np.mean(source**2)), rel=0.01
    )


def test_revoice_mode_and_curve_errors(probe, tmp_path, capsys):
    source = _tones(tmp_path / "a.wav")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": "a.wav", "text": "x"}) + "\n")
    out = tmp_path / "out"
    assert (
        probe.main(["--manifest", str(manifest), "--out", str(out), "--revoice"]) == 0
    )
    row = json.loads((out / "m.jsonl").read_text())
    changed, _ = sf.read(out / row["audio"])
    assert len(changed) == len(source) and not np.allclose(changed, source, atol=0.01)
    shifted = tmp_path / "shifted"
    assert (
        probe.main(
            [
                "--manifest",
                str(manifest),
                "--out",
                str(shifted),
                "--fricative-shift",
                "0.7",
            ]
        )
        == 0
    )
    row = json.loads((shifted / "m.jsonl").read_text())
    assert sf.read(shifted / row["audio"])[0].shape == source.shape
    for bad in ["bad", "1000:-3"]:
        with pytest.raises(SystemExit):
            probe.main(["--manifest", str(manifest), "--out", str(out), "--eq", bad])
        assert "--eq" in capsys.readouterr().err
