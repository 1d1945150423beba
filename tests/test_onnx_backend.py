"""ONNX export and the ONNX Runtime back end: graph I/O and metadata, parity
with PyTorch chunk by chunk, identical transcripts and audio, int8, weight
storage, torch-free CLI runs and the standalone examples."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile as sf
import torch

from export.onnx_export import main as export_main
from export.onnx_files import store_float16, write_models
from export.parity import TOLERANCE, asr_parity, tts_parity
from speech.asr.model import load_model
from speech.asr.recognizer import Recognizer, load_recognizer, transcript_from_events
from speech.onnx import providers_for
from speech.onnx.asr import OnnxAsrBackend
from speech.onnx.tts import OnnxSynthesizer
from speech.text.phonemize import PHONEME_SYMBOLS
from speech.tts.config import FastPitchConfig
from speech.tts.fastpitch import FastPitch, load_tts, save_tts
from speech.tts.synthesizer import load_synthesizer
from speech.tts.vocoder import Vocoder, VocoderConfig, load_vocoder, save_vocoder

REPO = Path(__file__).resolve().parent.parent
PHONEMES = "həlˈoʊ wˈɜːld, ðɪs ɪz ɐ tˈɛst."

# A sitecustomize that makes "import torch" fail in a subprocess.
NO_TORCH = textwrap.dedent(
    """
    import sys

    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith(("torch.", "torchaudio")):
                raise ImportError(f"torch is blocked in this test ({name})")
            return None

    sys.meta_path.insert(0, _NoTorch())
    """
)


def _tiny_voice(folder: Path) -> Path:
    torch.manual_seed(0)
    config = FastPitchConfig(
        symbols=PHONEME_SYMBOLS, model_dim=32, num_heads=2, ffn_dim=48,
        encoder_layers=2, decoder_layers=2, predictor_dim=24, chunk_size=4,
        past_context=6, dropout=0.0, attention_dropout=0.0, predictor_dropout=0.0,
    )  # fmt: skip
    model = FastPitch(config).eval()
    with torch.no_grad():
        model.duration_predictor.out.bias.fill_(1.5)  # ~3.5 frames per symbol
    save_tts(model, folder, dtype=torch.float32)
    vocoder = Vocoder(
        VocoderConfig(
            dim=16,
            intermediate_dim=32,
            num_layers=2,
            kernel_size=5,
            input_kernel_size=3,
        )
    )
    with torch.no_grad():
        for parameter in vocoder.parameters():
            parameter.normal_(0.0, 0.3)
        vocoder.head.bias[: vocoder.bins] -= 2.0
    save_vocoder(vocoder, folder / "vocoder", dtype=torch.float32)
    return folder


@pytest.fixture(scope="module")
def voice_dir(tmp_path_factory) -> Path:
    return _tiny_voice(tmp_path_factory.mktemp("voice"))


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory, model_dir, voice_dir) -> Path:
    out = tmp_path_factory.mktemp("onnx")
    args = argparse.Namespace(
        model=str(model_dir), tts_model=str(voice_dir), out=str(out), int8=True,
        skip_tts=False, skip_asr=False,
    )  # fmt: skip
    assert export_main(args) == 0  # 0: every fp32 graph passed its parity check
    return out


def _env_without_torch(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(NO_TORCH)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), str(REPO)])
    return env


# ------------------------------------------------------------------ graphs


def test_graphs_have_named_states_dynamic_batch_and_metadata(onnx_dir, model_dir):
    config = load_model(model_dir).config
    step = onnx.load(onnx_dir / "asr" / "asr_step.onnx")
    inputs = {i.name: i for i in step.graph.input}
    outputs = {o.name for o in step.graph.output}
    assert list(inputs)[:3] == ["features", "num_valid", "processed"]
    for i in range(config.num_layers):
        for kind in ("cache_k", "cache_v", "cache_conv"):
            assert f"{kind}_{i}" in inputs and f"new_{kind}_{i}" in outputs
    dims = inputs["cache_k_0"].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [
        config.streaming.left_context,
        config.d_model,
    ]
    meta = {p.key: p.value for p in step.metadata_props}
    assert meta["model_type"] == "chunkformer_ctc"
    assert int(meta["sample_rate"]) == config.sample_rate
    assert int(meta["chunk_size"]) == config.streaming.chunk_size
    assert int(meta["left_context"]) == config.streaming.left_context
    assert len(json.loads(meta["vocabulary"])) == config.vocab_size
    assert {"version", "hop", "num_layers", "d_model", "config", "fbank"} <= set(meta)
    tts = onnx.load(onnx_dir / "tts" / "tts_encoder.onnx")
    tts_meta = {p.key: p.value for p in tts.metadata_props}
    assert tuple(json.loads(tts_meta["symbols"])) == PHONEME_SYMBOLS
    assert {"sample_rate", "hop", "chunk_size", "past_context"} <= set(tts_meta)
    expected = {"asr_step.onnx", "asr_subsampling.onnx", "asr_ctc.onnx"}
    expected |= {f"asr_layer_{i}.onnx" for i in range(config.num_layers)}
    for folder in ("asr", "asr-int8"):
        assert {p.name for p in (onnx_dir / folder).iterdir()} == expected


def test_fp32_graphs_match_pytorch_chunk_by_chunk(onnx_dir, model_dir, voice_dir):
    asr = asr_parity(load_model(model_dir), onnx_dir / "asr", seed=1)
    assert set(asr) == {"step", "step_layered", "encode_list", "pipeline"}
    assert max(asr.values()) <= TOLERANCE, asr
    model = load_tts(voice_dir)
    tts = tts_parity(model, load_vocoder(voice_dir / "vocoder"), onnx_dir / "tts", 1)
    assert tts.pop("encoder_duration_mismatches") == 0
    assert max(tts.values()) <= TOLERANCE, tts


def test_int8_graphs_are_quantised_and_close(onnx_dir, model_dir, voice_dir):
    step = onnx.load(onnx_dir / "asr-int8" / "asr_step.onnx")
    ops = {node.op_type for node in step.graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    report = asr_parity(load_model(model_dir), onnx_dir / "asr-int8")
    assert max(report.values()) < 0.5, report  # log-probabilities; see README
    vocoder = onnx.load(onnx_dir / "tts-int8" / "tts_vocoder_step.onnx")
    float_matmuls = [n for n in vocoder.graph.node if n.op_type == "MatMul"]
    assert float_matmuls  # the inverse DFT stays float32
    model, vocoder = load_tts(voice_dir), load_vocoder(voice_dir / "vocoder")
    tts = tts_parity(model, vocoder, onnx_dir / "tts-int8")
    assert tts["encoder_duration_mismatches"] == 0  # the encoder stays float
    assert tts["encoder"] <= TOLERANCE


def test_float16_storage_is_exact_and_external_shards_dedupe(tmp_path, model_dir):
    from export.asr_graphs import asr_graphs
    from export.onnx_files import export_module

    model = load_model(model_dir)
    with torch.no_grad():  # weights as a float16 checkpoint holds them
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    spec = asr_graphs(model)["asr_layer_0.onnx"]
    feeds = {
        n: a.numpy() for n, a in zip(spec["input_names"], spec["args"], strict=True)
    }
    with torch.no_grad():
        expected = [a.numpy() for a in spec["module"](*spec["args"])]
    graph = export_module(**spec)
    size = graph.ByteSize()
    assert store_float16(graph) >= 4
    assert graph.ByteSize() < 0.75 * size
    twin = onnx.ModelProto()
    twin.CopyFrom(graph)
    single = onnx.ModelProto()
    single.CopyFrom(graph)
    limit = 8192  # forces external shards
    one = write_models({"a.onnx": single}, tmp_path / "one", limit)
    two = write_models({"a.onnx": graph, "b.onnx": twin}, tmp_path / "two", limit)
    shards = [f for f in two if f.suffix == ".bin"]
    assert len(shards) >= 2 and all(f.stat().st_size <= limit for f in shards)
    assert sum(f.stat().st_size for f in shards) == sum(
        f.stat().st_size for f in one if f.suffix == ".bin"
    )  # the second graph's weights are the first one's
    for name in ("a.onnx", "b.onnx"):
        session = ort.InferenceSession(
            tmp_path / "two" / name, providers=["CPUExecutionProvider"]
        )
        for got, want in zip(session.run(None, feeds), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


# ------------------------------------------------------------- recognizer


def test_transcripts_identical_to_pytorch(onnx_dir, model_dir, speech_file):
    torch_asr = load_recognizer(model_dir)
    onnx_asr = load_recognizer(onnx_dir, backend="onnx")
    assert onnx_asr.backend.name == "onnx"
    samples, _ = sf.read(speech_file, dtype="float32")
    pairs = [
        (torch_asr.transcribe(speech_file), onnx_asr.transcribe(speech_file)),
        (torch_asr.transcribe(samples), onnx_asr.transcribe(samples)),
    ]
    for expected, got in pairs:
        assert got.text == expected.text and expected.text
        words = [(w.text, w.start, w.end) for s in got.segments for w in s.words]
        assert words == [
            (w.text, w.start, w.end) for s in expected.segments for w in s.words
        ]
    many = dict(onnx_asr.transcribe_many([speech_file, speech_file]))
    assert many[str(speech_file)].text == pairs[0][0].text
    finals = {}
    for name, recognizer in (("torch", torch_asr), ("onnx", onnx_asr)):
        stream = recognizer.stream()
        events = []
        for start in range(0, len(samples), 2345):
            events += stream.accept_waveform(samples[start : start + 2345])
        events += stream.finish()
        finals[name] = transcript_from_events(events, len(samples) / 16000).text
    assert finals["onnx"] == finals["torch"] and finals["onnx"]
    # VTLN lives in the numpy front end, so ONNX Runtime gets it too
    torch_auto = load_recognizer(model_dir, vtln="auto")
    onnx_auto = load_recognizer(onnx_dir, backend="onnx", vtln="auto")
    assert onnx_auto.estimate_warp(samples) == torch_auto.estimate_warp(samples)
    assert onnx_auto.transcribe(samples).text == torch_auto.transcribe(samples).text
    # a warp ensemble: W rows per live stream and per batch, on either back end
    warps = (1.2, 1.5)
    torch_ens = load_recognizer(model_dir, vtln=warps)
    onnx_ens = load_recognizer(onnx_dir, backend="onnx", vtln=warps)
    assert (
        onnx_ens.transcribe(speech_file).text == torch_ens.transcribe(speech_file).text
    )
    texts = {}
    for name, recognizer in (("torch", torch_ens), ("onnx", onnx_ens)):
        stream = recognizer.stream()
        events = stream.accept_waveform(samples) + stream.finish()
        texts[name] = transcript_from_events(events, len(samples) / 16000).text
    assert texts["onnx"] == texts["torch"] != finals["torch"]


@torch.inference_mode()
def test_full_context_batch_matches_pytorch(onnx_dir, model_dir):
    """A chunk longer than every utterance (full context, C = 100000) is one
    chunk per utterance, not a 100000-frame padded one."""
    from speech.asr.config import ChunkGeometry

    model = load_model(model_dir).float().eval()
    backend = OnnxAsrBackend(onnx_dir / "asr")
    rng = np.random.default_rng(3)
    features = [rng.standard_normal((n, 80)).astype(np.float32) for n in (57, 300)]
    full = ChunkGeometry(100000, 0, 0)
    ours = backend.encode_list(features, full)
    reference = model.forward_list(
        [torch.from_numpy(f) for f in features], 100000, 0, 0
    )
    assert [o.shape for o in ours] == [tuple(r.shape) for r in reference]
    for a, b in zip(ours, reference, strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-4, rtol=1e-4)


def test_int8_transcript_stays_close(onnx_dir, speech_file):
    import jiwer

    fp32 = load_recognizer(onnx_dir / "asr", backend="onnx").transcribe(speech_file)
    int8 = load_recognizer(onnx_dir / "asr-int8", backend="onnx").transcribe(
        speech_file
    )
    # A random tiny model has no margin between its tokens (and writes one
    # long "word"); trained models change far less (README). Characters bound
    # gross breakage only.
    assert fp32.text and jiwer.cer(fp32.text, int8.text) < 0.5


def test_streams_batch_across_sessions_at_any_geometry(onnx_dir, model_dir):
    backend = OnnxAsrBackend(onnx_dir)
    config = backend.config
    rng = np.random.default_rng(0)
    for chunk, left in ((config.streaming.chunk_size, config.streaming.left_context),
                        (3, 5)):  # fmt: skip
        window = (chunk - 1) * 8 + 15
        states = [backend.init_state(1, left) for _ in range(3)]
        for k in range(4):  # stream 2 starts one chunk late
            windows = rng.standard_normal((3, window, 80)).astype(np.float32) + 8
            active = [0, 1] if k == 0 else [0, 1, 2]
            valid = np.array([chunk] * len(active))
            batched, state = backend.step(
                windows[active],
                backend.stack_states([states[i] for i in active]),
                valid,
            )
            for row, i in enumerate(active):
                alone, states[i] = backend.step(
                    windows[i : i + 1], states[i], valid[:1]
                )
                np.testing.assert_allclose(batched[row], alone[0], rtol=0, atol=1e-5)
                for a, b in zip(
                    backend.unstack_states(state)[row], states[i], strict=True
                ):
                    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_cuda_provider_selection_or_a_clear_error():
    if "CUDAExecutionProvider" in ort.get_available_providers():  # the GPU build
        assert providers_for("cuda:1") == [
            ("CUDAExecutionProvider", {"device_id": 1}),
            "CPUExecutionProvider",
        ]
    else:
        with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
            providers_for("cuda:0")
    with pytest.raises(ValueError):
        providers_for("tpu")
    assert providers_for() == ["CPUExecutionProvider"]


# ------------------------------------------------------------ synthesizer


def test_synthesizer_matches_pytorch(onnx_dir, voice_dir):
    torch_tts = load_synthesizer(voice_dir)
    onnx_tts = load_synthesizer(onnx_dir, backend="onnx")
    assert isinstance(onnx_tts, OnnxSynthesizer)
    assert onnx_tts.sample_rate == torch_tts.sample_rate
    controls = dict(pace=1.2, pitch_shift=2.0, volume=0.8)
    expected = torch_tts.synthesize_phonemes(PHONEMES, **controls)
    got = onnx_tts.synthesize_phonemes(PHONEMES, **controls)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    streamed = np.concatenate(list(onnx_tts.stream_ids(
        [PHONEME_SYMBOLS.index(c) for c in PHONEMES], **controls
    )))  # fmt: skip
    np.testing.assert_allclose(streamed, got, rtol=0, atol=1e-6)
    for bad in (dict(pace=0.0), dict(volume=-1.0)):
        with pytest.raises(ValueError):
            onnx_tts.stream("Hello.", **bad)
    with pytest.raises(ValueError):
        onnx_tts.synthesize("   ")


def test_synthesizer_steps_batch_across_streams(onnx_dir):
    tts = OnnxSynthesizer(onnx_dir)
    ids = [PHONEME_SYMBOLS.index(c) for c in PHONEMES]
    inputs = [tts.frames(ids), tts.frames(ids[5:], pace=0.9)]
    c = tts.chunk_size
    alone = [[tts.init_decoder_state(), tts.init_vocoder_state()] for _ in inputs]
    batched = [tts.unstack_states(tts.init_decoder_state(2)),
               tts.unstack_states(tts.init_vocoder_state(2))]  # fmt: skip
    for k in range(3):  # stream 1 starts one chunk late
        active = [0] if k == 0 else [0, 1]
        start = [k * c, (k - 1) * c]
        frames = np.stack([inputs[i][start[i] : start[i] + c] for i in active])
        mel, decoder = tts.decode_chunk(
            frames, tts.stack_states([batched[0][i] for i in active])
        )
        audio, _, vocoder = tts.vocode_chunk(
            mel, tts.stack_states([batched[1][i] for i in active])
        )
        for row, i in enumerate(active):
            batched[0][i] = tts.unstack_states(decoder)[row]
            batched[1][i] = tts.unstack_states(vocoder)[row]
            one, alone[i][0] = tts.decode_chunk(frames[row : row + 1], alone[i][0])
            wave, _, alone[i][1] = tts.vocode_chunk(one, alone[i][1])
            np.testing.assert_allclose(mel[row], one[0], rtol=0, atol=1e-5)
            np.testing.assert_allclose(audio[row], wave[0], rtol=0, atol=1e-6)


def test_multi_chunk_decode_matches_pytorch_and_single_steps(onnx_dir, voice_dir):
    model = load_tts(voice_dir).float().eval()
    tts = OnnxSynthesizer(onnx_dir)
    assert tts.decoder_chunks is not None
    c, d, layers = tts.chunk_size, tts.dim, tts.num_layers
    rng = np.random.default_rng(3)
    first = rng.standard_normal((2, 3 * c, d)).astype(np.float32)
    x = rng.standard_normal((2, 2 * c + c // 2 + 1, d)).astype(np.float32)
    with torch.inference_mode():  # PyTorch: a non-empty state, then 2.75 chunks
        _, state = model.decoder.forward_chunk(
            torch.from_numpy(first), model.decoder.init_state(2)
        )
        expected, expected_state = model.decoder.forward_chunk(
            torch.from_numpy(x), state
        )
    onnx_state = {"processed": state.processed.numpy()}
    for i in range(layers):
        onnx_state[f"cache_k_{i}"] = state.keys[i].numpy()
        onnx_state[f"cache_v_{i}"] = state.values[i].numpy()
        onnx_state[f"cache_conv_{i}"] = state.conv[i].numpy()
    mel, new = tts.decode_chunk(x, onnx_state)
    assert mel.shape == (2, x.shape[1], expected.shape[-1])
    np.testing.assert_allclose(mel, expected.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_array_equal(new["processed"], expected_state.processed)
    for i in range(layers):
        for name, ref in (("k", expected_state.keys), ("v", expected_state.values),
                          ("conv", expected_state.conv)):  # fmt: skip
            np.testing.assert_allclose(
                new[f"cache_{name}_{i}"], ref[i].numpy(), rtol=0, atol=1e-4
            )

    # = one step-graph call per chunk, from an empty state and from this one
    for start_state in (tts.init_decoder_state(2), onnx_state):
        steps, step_state = [], start_state
        for start in range(0, x.shape[1], c):
            one, step_state = tts.decode_chunk(x[:, start : start + c], step_state)
            steps.append(one)
        mel, new = tts.decode_chunk(x, start_state)
        np.testing.assert_allclose(mel, np.concatenate(steps, 1), rtol=0, atol=1e-5)
        np.testing.assert_array_equal(new["processed"], step_state["processed"])
        processed = int(new["processed"][0])
        valid = slice(max(0, tts.past_context - processed), None)
        conv_valid = slice(max(0, tts.conv_context - processed), None)
        for i in range(layers):
            for name, rows in (("k", valid), ("v", valid), ("conv", conv_valid)):
                key = f"cache_{name}_{i}"
                np.testing.assert_allclose(
                    new[key][:, rows], step_state[key][:, rows], rtol=0, atol=1e-5
                )
        # and the next chunk decodes the same from either state
        nxt = x[:, :c]
        a, _ = tts.decode_chunk(nxt, new)
        b, _ = tts.decode_chunk(nxt, step_state)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_exports_without_the_multi_chunk_graph_still_load(tmp_path, onnx_dir):
    old = tmp_path / "tts"
    old.mkdir()
    for path in (onnx_dir / "tts").iterdir():
        if path.name != "tts_decoder_chunks.onnx":
            (old / path.name).symlink_to(path)
    legacy, current = OnnxSynthesizer(old), OnnxSynthesizer(onnx_dir)
    assert legacy.decoder_chunks is None
    np.testing.assert_allclose(
        legacy.synthesize_phonemes(PHONEMES),
        current.synthesize_phonemes(PHONEMES),
        rtol=0,
        atol=1e-5,
    )


def test_step_api_is_the_same_on_both_backends(onnx_dir, voice_dir):
    from tests.test_tts_api import step_synthesize

    torch_tts = load_synthesizer(voice_dir)
    onnx_tts = load_synthesizer(onnx_dir, backend="onnx")
    for name in ("chunk_size", "delay_samples", "sample_rate", "sentence_pause"):
        assert getattr(onnx_tts, name) == getattr(torch_tts, name), name
    assert (torch_tts.backend, onnx_tts.backend) == ("torch", "onnx")
    ids = [PHONEME_SYMBOLS.index(c) for c in PHONEMES]
    utterances = [ids, ids[4:], ids[:9]]
    expected = step_synthesize(torch_tts, utterances, pace=1.1)
    got = step_synthesize(onnx_tts, utterances, pace=1.1)
    for one, reference in zip(got, expected, strict=True):
        assert one.shape == reference.shape
        np.testing.assert_allclose(one, reference, rtol=0, atol=1e-4)
    alone = onnx_tts.synthesize_ids(ids, pace=1.1)
    np.testing.assert_allclose(got[0], alone, rtol=0, atol=1e-6)


def test_synthesizer_text_path_matches_pytorch(onnx_dir, voice_dir):
    text = "Hello there. This is the second sentence, with 3 words more!"
    expected = load_synthesizer(voice_dir).synthesize(text)
    got = load_synthesizer(onnx_dir / "tts", backend="onnx").synthesize(text)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


# ----------------------------------------------------- no torch, examples


def test_cli_runs_without_torch(tmp_path, onnx_dir, speech_file):
    from speech.formats import to_txt

    env = _env_without_torch(tmp_path)
    probe = subprocess.run(
        [sys.executable, "-c", "import torch"], env=env, capture_output=True
    )
    assert probe.returncode != 0  # the blocker works
    speech = [sys.executable, "-m", "speech.cli"]
    done = subprocess.run(
        [*speech, "transcribe", "--backend", "onnx", "--model", str(onnx_dir),
         "--quiet", str(speech_file)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # speech transcribe decodes over its default warp ensemble
    from speech.cli import DEFAULT_ENSEMBLE

    expected = load_recognizer(
        onnx_dir, backend="onnx", vtln=DEFAULT_ENSEMBLE
    ).transcribe(speech_file)
    assert done.stdout == to_txt(expected) and expected.text
    # --backend auto (the default) takes the export a --model names, so the
    # same command needs no torch either
    done = subprocess.run(
        [*speech, "transcribe", "--model", str(onnx_dir), "--quiet",
         str(speech_file)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == to_txt(expected)
    # the shipped export (install.sh's), checked against the shipped weights;
    # auto takes it because it is current
    done = subprocess.run(
        [*speech, "transcribe", "--beam-size", "1", "--quiet", str(speech_file)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "exported from other weights" not in done.stderr
    shipped = load_recognizer(backend="onnx", vtln=DEFAULT_ENSEMBLE).transcribe(
        speech_file
    )
    assert done.stdout == to_txt(shipped) and shipped.text
    wav = tmp_path / "out.wav"
    text = "Hello world. Fine, thanks!"
    done = subprocess.run(
        [*speech, "synthesize", "--backend", "onnx", "--model", str(onnx_dir),
         "--pace", "1.1", "-o", str(wav), text],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    samples, rate = sf.read(wav, dtype="float32")
    synthesizer = OnnxSynthesizer(onnx_dir)
    reference = synthesizer.synthesize(text, pace=1.1)
    assert rate == synthesizer.sample_rate
    np.testing.assert_allclose(samples, reference, rtol=0, atol=2 / 32768)
    # auto (the default) on a named export, and on the shipped one
    for model in (["--model", str(onnx_dir)], []):
        wav.unlink()
        done = subprocess.run(
            [*speech, "synthesize", *model, "--pace", "1.1", "-o", str(wav), text],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        samples, _ = sf.read(wav, dtype="float32")
        reference = OnnxSynthesizer(onnx_dir if model else None).synthesize(
            text, pace=1.1
        )
        np.testing.assert_allclose(samples, reference, rtol=0, atol=2 / 32768)


def test_standalone_examples(tmp_path, onnx_dir, speech_file):
    env = _env_without_torch(tmp_path)
    env["PYTHONPATH"] = str(tmp_path / "blocker")  # not even the toolkit
    done = subprocess.run(
        [sys.executable, str(REPO / "export" / "example_onnx_asr.py"),
         str(onnx_dir / "asr"), str(speech_file)],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    recognizer = Recognizer(OnnxAsrBackend(onnx_dir))
    samples, _ = sf.read(speech_file, dtype="float32")
    stream = recognizer.stream(rescore=False)  # the example is the streaming pass
    events = stream.accept_waveform(samples) + stream.finish()
    expected = transcript_from_events(events, len(samples) / 16000).text
    assert done.stdout.strip() == expected and expected
    wav = tmp_path / "example.wav"
    done = subprocess.run(
        [sys.executable, str(REPO / "export" / "example_onnx_tts.py"),
         str(onnx_dir / "tts"), PHONEMES, str(wav)],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    samples, _ = sf.read(wav, dtype="float32")
    reference = OnnxSynthesizer(onnx_dir).synthesize_phonemes(PHONEMES)
    np.testing.assert_allclose(samples, reference, rtol=0, atol=2 / 32768)


def test_shipped_export_tells_when_the_weights_moved_on(
    onnx_dir, model_dir, tmp_path, monkeypatch, caplog
) -> None:
    """An export records the digest of the weights it came from; the shipped
    export (loaded by default) warns in one line when the shipped weights
    differ, e.g. after an update that was not followed by ./install.sh, and
    stays quiet when they match (as install.sh leaves it)."""
    import shutil

    import speech.asr.model as asr_model
    import speech.asr.weights as asr_weights
    from speech.onnx import Graph
    from speech.onnx.asr import warn_if_stale

    folder = onnx_dir / "asr"
    recorded = Graph(folder / "asr_step.onnx").metadata["weights_sha256"]
    assert recorded == asr_weights.weights_digest(model_dir)

    moved = tmp_path / "moved"
    shutil.copytree(model_dir, moved)
    monkeypatch.setattr(asr_weights, "DEFAULT_MODEL_DIR", model_dir)
    assert not warn_if_stale(folder, recorded)
    model = load_model(moved)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    asr_model.save_model(model, moved)
    monkeypatch.setattr(asr_weights, "DEFAULT_MODEL_DIR", moved)
    with caplog.at_level("WARNING", logger="speech.onnx.asr"):
        assert warn_if_stale(folder, recorded)
    (message,) = [r.getMessage() for r in caplog.records]
    assert f"{folder} was exported from other weights than {moved}" in message
    assert "speech export onnx" in message and "\n" not in message

    # the real shipped export, as install.sh made it, matches the shipped weights
    monkeypatch.undo()
    caplog.clear()
    with caplog.at_level("WARNING", logger="speech.onnx.asr"):
        OnnxAsrBackend()
    assert not caplog.records


def test_library_backend_auto_takes_an_export_on_the_cpu(
    onnx_dir, model_dir, voice_dir, speech_file, monkeypatch
) -> None:
    """``backend="auto"`` in the loaders: ONNX Runtime for an export on the
    CPU (its transcript and audio those of ``backend="onnx"``), PyTorch for a
    PyTorch folder or another device; an unknown name is refused."""
    import speech
    from speech.tts.synthesizer import Synthesizer

    auto = load_recognizer(onnx_dir, backend="auto")
    assert isinstance(auto.backend, OnnxAsrBackend)
    expected = load_recognizer(onnx_dir, backend="onnx").transcribe(speech_file)
    assert auto.transcribe(speech_file).text == expected.text != ""
    assert load_recognizer(model_dir, backend="auto").backend.name == "torch"
    for load in (load_synthesizer, speech.load_synthesizer):
        voice = load(onnx_dir, backend="auto")
        assert isinstance(voice, OnnxSynthesizer)
        np.testing.assert_array_equal(
            voice.synthesize("Hello there."),
            OnnxSynthesizer(onnx_dir).synthesize("Hello there."),
        )
        assert isinstance(load(voice_dir, backend="auto"), Synthesizer)
        # no folder: the shipped voice's export (install.sh's), either way
        assert isinstance(load(backend="onnx"), OnnxSynthesizer)
        assert isinstance(load(backend="auto"), OnnxSynthesizer)
    # a GPU device stays on PyTorch (the export is not asked for)
    from speech import backends

    assert backends.choose_backend(str(onnx_dir), None, "cuda", tts=False) == "torch"
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        load_recognizer(model_dir, backend="tensorrt")
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        load_synthesizer(voice_dir, backend="tensorrt")


def test_serve_backend_auto_takes_onnx_where_every_model_has_an_export(
    onnx_dir, model_dir, voice_dir, speech_file, tmp_path, monkeypatch
) -> None:
    """`speech serve --backend auto` (the default) serves on ONNX Runtime on
    CPU when every model it loads has an export, on PyTorch otherwise; a
    server started that way reports the back end it chose and transcribes."""
    import signal

    import speech.asr.weights as asr_weights
    import speech.onnx
    from server.config import ServerConfig
    from speech.cli import build_parser
    from speech.cli import main as cli_main
    from tests.server_util import start_serve

    parser = build_parser()

    def backend(*flags: str) -> str:
        return ServerConfig.from_args(parser.parse_args(["serve", *flags])).backend

    exports = ["--asr-model", str(onnx_dir), "--tts-model", str(onnx_dir)]
    assert backend(*exports) == "onnx"  # an export's top folder
    assert backend("--asr-model", str(onnx_dir / "asr"), "--tts-model",
                   str(onnx_dir / "tts")) == "onnx"  # fmt: skip
    assert backend(*exports, "--device", "cuda") == "torch"
    assert backend(*exports, "--backend", "torch") == "torch"
    assert backend("--asr-model", str(model_dir), "--tts-model", str(onnx_dir)) == (
        "torch"
    )
    # a model not served does not count
    assert backend("--no-asr", "--asr-model", str(model_dir), "--tts-model",
                   str(onnx_dir)) == "onnx"  # fmt: skip
    # no model named: the shipped export, if install.sh built it from the
    # shipped weights as they are now
    monkeypatch.setattr(speech.onnx, "DEFAULT_ONNX_DIR", onnx_dir)
    monkeypatch.setattr(asr_weights, "DEFAULT_MODEL_DIR", model_dir)
    assert backend() == "onnx"
    assert backend("--tts-model", str(voice_dir)) == "torch"
    monkeypatch.setattr(asr_weights, "DEFAULT_MODEL_DIR", REPO / "speech/models/asr")
    assert backend() == "torch"  # the shipped weights moved on
    monkeypatch.setattr(speech.onnx, "DEFAULT_ONNX_DIR", tmp_path / "not_exported")
    assert backend() == "torch"

    process, port, health = start_serve(*exports, "--threads", "1")
    try:
        assert health["asr"]["backend"] == "onnx" == health["tts"]["backend"]
        url = f"ws://127.0.0.1:{port}/asr"
        assert cli_main(["client", "asr", str(speech_file), "--url", url]) == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        log = [json.loads(x) for x in process.stderr.read().splitlines() if x]
        listening = next(e for e in log if e["event"] == "listening")
        assert listening["backend"] == "onnx"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
