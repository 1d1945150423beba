"""`speech transcribe` as users run it: formats, output folders, manifests,
resumable reruns, and bad files that fail alone with a one-line error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def _speech(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "speech.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, speech_file) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    samples, _ = sf.read(speech_file, dtype="float32")
    good = root / "good.ogg"
    sf.write(good, np.stack([samples, samples * 0.5], 1), 16000, format="OGG")
    loud = root / "loud.wav"
    sf.write(loud, samples[: 16000 * 3], 16000)
    truncated = root / "truncated.wav"
    data = loud.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    junk = root / "junk.mp3"
    junk.write_bytes(b"\x00\x01not audio" * 50)
    return {
        "good": good,
        "loud": loud,
        "truncated": truncated,
        "junk": junk,
        "missing": root / "missing.wav",
    }


def test_formats_to_stdout(model_dir, inputs) -> None:
    for fmt in ("txt", "json", "srt", "vtt"):
        result = _speech(
            "transcribe",
            str(inputs["loud"]),
            "--model",
            str(model_dir),
            "--format",
            fmt,
        )
        assert result.returncode == 0, result.stderr
        out = result.stdout
        if fmt == "json":
            data = json.loads(out)
            assert data["duration"] == pytest.approx(3.0, abs=0.01)
            assert all("words" in s for s in data["segments"])
        elif fmt == "vtt":
            assert out.startswith("WEBVTT")
        elif fmt == "srt":
            assert " --> " in out and out.lstrip().startswith("1")


def test_batch_with_bad_files_and_resume(model_dir, inputs, tmp_path) -> None:
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(
        "".join(json.dumps({"audio": str(p)}) + "\n" for p in inputs.values())
    )
    out = tmp_path / "out"
    result = _speech(
        "transcribe",
        "--list",
        str(manifest),
        "--model",
        str(model_dir),
        "--output-dir",
        str(out),
        "--format",
        "srt",
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    for name in ("truncated", "junk", "missing"):
        assert any(str(inputs[name]) in line for line in errors)
    assert sorted(p.name for p in out.iterdir()) == ["good.srt", "loud.srt"]
    first = (out / "good.srt").read_text()
    assert " --> " in first

    # a rerun skips finished files (their outputs stay as they are)
    (out / "loud.srt").write_text("kept\n")
    again = _speech(
        "transcribe",
        str(inputs["good"]),
        str(inputs["loud"]),
        "--model",
        str(model_dir),
        "--output-dir",
        str(out),
        "--format",
        "srt",
    )
    assert again.returncode == 0, again.stderr
    assert (out / "loud.srt").read_text() == "kept\n"
    assert (out / "good.srt").read_text() == first
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_usage_errors(model_dir, tmp_path) -> None:
    assert _speech("transcribe").returncode == 2
    bad_model = _speech("transcribe", "x.wav", "--model", str(tmp_path))
    assert bad_model.returncode == 2 and "cannot load model" in bad_model.stderr
    bad_vtln = _speech("transcribe", "x.wav", "--vtln", "7")
    assert bad_vtln.returncode == 2
    assert "vtln must be 'auto', a factor within 0.5..2" in bad_vtln.stderr
    bad_ensemble = _speech("transcribe", "x.wav", "--vtln", "0.9,0.9")
    assert bad_ensemble.returncode == 2
    assert "(a warp ensemble), got '0.9,0.9'" in bad_ensemble.stderr
    for value in ("-1", "nan", "x"):
        bad_oov = _speech("transcribe", "x.wav", "--oov-penalty", value)
        assert bad_oov.returncode == 2
        assert f"--oov-penalty: '{value}' is not a number of 0 or more" in (
            bad_oov.stderr
        )


def test_vtln_auto_from_the_command_line(model_dir, inputs) -> None:
    """--vtln auto picks each file's warp; --vtln FACTOR fixes it: the text
    of `auto` is that of the fixed warp the recognizer picks."""
    from speech.asr.recognizer import load_recognizer
    from speech.audio import load_audio

    good = str(inputs["loud"])
    auto = _speech("transcribe", good, "--model", str(model_dir), "--vtln", "auto")
    assert auto.returncode == 0, auto.stderr
    warp = load_recognizer(model_dir, vtln="auto").estimate_warp(
        load_audio(good, 16000)
    )
    fixed = _speech("transcribe", good, "--model", str(model_dir), "--vtln", str(warp))
    assert fixed.returncode == 0 and auto.stdout == fixed.stdout


def test_default_decoding_is_the_warp_ensemble(model_dir, inputs) -> None:
    """`speech transcribe` encodes under the three warps of DEFAULT_ENSEMBLE
    and decodes their mean posterior, as the library does with that setting;
    --vtln 1 gives the single pass."""
    from speech.asr.recognizer import load_recognizer
    from speech.cli import DEFAULT_ENSEMBLE

    good = str(inputs["good"])
    base = ("transcribe", good, "--model", str(model_dir), "--format", "json")
    default = _speech(*base)
    single = _speech(*base, "--vtln", "1")
    assert default.returncode == 0 and single.returncode == 0, default.stderr
    text = json.loads(default.stdout)["text"]
    library = load_recognizer(model_dir, vtln=DEFAULT_ENSEMBLE).transcribe(good)
    assert text == library.text
    assert (
        json.loads(single.stdout)["text"]
        == load_recognizer(model_dir).transcribe(good).text
    )
    spelled = _speech(*base, "--vtln", ",".join(f"{w:g}" for w in DEFAULT_ENSEMBLE))
    assert json.loads(spelled.stdout)["text"] == text
