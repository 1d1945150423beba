"""Streaming vocoder and Griffin-Lim fallback: streaming equals offline for any
chunking, fixed-size batched state, exact inverse STFT alignment, ONNX parity,
save/load; Griffin-Lim keeps a tone's frequency."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speech.tts.audio import MelConfig, MelSpectrogram
from speech.tts.griffin_lim import griffin_lim
from speech.tts.vocoder import (
    Vocoder,
    VocoderConfig,
    VocoderState,
    load_vocoder,
    save_vocoder,
    stack_states,
    unstack_states,
)

TINY = VocoderConfig(
    dim=16, intermediate_dim=32, num_layers=2, kernel_size=5, input_kernel_size=3
)
HOP = TINY.mel.hop_length


def _tiny_model(seed: int = 0) -> Vocoder:
    """Random weights large enough for a waveform of order 0.1-1."""
    torch.manual_seed(seed)
    model = Vocoder(TINY).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
        model.head.bias[: model.bins] -= 2.0  # log-magnitudes around -2
    return model


def _random_mel(batch: int, frames: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, TINY.mel.n_mels, frames, generator=generator) * 2 - 5


def _stream(
    model: Vocoder,
    mel: torch.Tensor,
    sizes: list[int],
    state: VocoderState | None = None,
) -> tuple[torch.Tensor, VocoderState]:
    state = model.init_state(mel.shape[0]) if state is None else state
    pieces, start = [], 0
    for size in sizes:
        wave, state = model.forward_chunk(mel[:, :, start : start + size], state)
        assert wave.shape == (mel.shape[0], size * HOP)
        pieces.append(wave)
        start += size
    return torch.cat(pieces, dim=1), state


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=8))
def test_streaming_equals_offline_for_any_chunking(sizes: list[int]) -> None:
    model = _tiny_model()
    frames = sum(sizes)
    mel = _random_mel(2, frames)
    with torch.no_grad():
        offline = model(mel)
        streamed, state = _stream(model, mel, sizes)
        streamed = torch.cat([streamed, model.flush(state)], dim=1)
    assert offline.shape == (2, frames * HOP)
    assert streamed.shape == (2, frames * HOP + model.delay_samples)
    assert offline.abs().max() > 0.01  # a real signal, not all zeros
    torch.testing.assert_close(
        streamed[:, model.delay_samples :], offline, rtol=0, atol=1e-5
    )


def test_output_lengths_follow_the_mel_convention() -> None:
    model = _tiny_model()
    mel_fn = MelSpectrogram(TINY.mel)
    for samples in (4000, 4096, 4097, 12345):
        mel = mel_fn(torch.randn(1, samples))
        frames = mel.shape[2]
        assert frames == samples // HOP + 1
        with torch.no_grad():
            wave = model(mel)
        assert wave.shape == (1, frames * HOP)
        assert wave.shape[1] >= samples
    with torch.no_grad():
        state = model.init_state(3)
        assert model.flush(state).shape == (3, TINY.mel.n_fft // 2)


def test_state_shapes_are_fixed_and_only_batch_varies() -> None:
    model = _tiny_model()
    cfg = TINY
    expected = {
        "mel_cache": (cfg.mel.n_mels, cfg.input_kernel_size - 1),
        "conv_cache": (cfg.num_layers, cfg.kernel_size - 1, cfg.dim),
        "overlap": (cfg.mel.n_fft - cfg.mel.hop_length,),
        "frames": (),
    }
    for batch in (1, 3):
        state = model.init_state(batch)
        with torch.no_grad():
            for size in (1, 7, 2):
                _, state = model.forward_chunk(_random_mel(batch, size), state)
                for name, shape in expected.items():
                    assert getattr(state, name).shape == (batch, *shape), name
        assert state.frames.tolist() == [10] * batch


def test_stacked_states_run_like_separate_streams() -> None:
    """Two streams at different positions (one mid-utterance, one just
    started) batched together give each stream's own output."""
    model = _tiny_model()
    mel_a, mel_b = _random_mel(1, 12, seed=2), _random_mel(1, 5, seed=3)
    with torch.no_grad():
        _, state_a = _stream(model, mel_a[:, :, :7], [3, 4])  # 7 frames in
        state_b = model.init_state(1)
        alone_a, end_a = model.forward_chunk(mel_a[:, :, 7:12], state_a)
        alone_b, end_b = model.forward_chunk(mel_b, state_b)
        batched = stack_states([state_a, state_b])
        both, end_both = model.forward_chunk(
            torch.cat([mel_a[:, :, 7:12], mel_b]), batched
        )
        torch.testing.assert_close(
            both, torch.cat([alone_a, alone_b]), rtol=0, atol=1e-6
        )
        split = unstack_states(end_both)
        for got, want in ((split[0], end_a), (split[1], end_b)):
            for a, b in zip(got, want, strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        torch.testing.assert_close(
            model.flush(end_both), torch.cat([model.flush(end_a), model.flush(end_b)])
        )


@pytest.mark.parametrize("samples", [1000, 4096, 5000, 5121])
def test_inverse_stft_inverts_the_mel_analysis_stft(samples: int) -> None:
    """Fed the exact STFT of a signal (as MelSpectrogram computes it), the
    synthesis path returns the signal on the source timeline, chunk by
    chunk: this pins the sample alignment and the edge normalisation."""
    model = _tiny_model()
    cfg = TINY.mel
    signal = torch.randn(1, samples)
    spec = torch.stft(
        signal,
        cfg.n_fft,
        cfg.hop_length,
        window=torch.hann_window(cfg.n_fft),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    spectrum = torch.cat([spec.real, spec.imag], dim=1).transpose(1, 2)  # (1, T, 2F)
    frames = spectrum.shape[1]
    state, pieces = model.init_state(1), []
    for start in range(0, frames, 3):
        chunk = spectrum[:, start : start + 3]
        wave, overlap = model.inverse_stft(chunk, state)
        pieces.append(wave)
        state = state._replace(overlap=overlap, frames=state.frames + chunk.shape[1])
    pieces.append(model.flush(state))
    rebuilt = torch.cat(pieces, dim=1)[:, model.delay_samples :]
    assert rebuilt.shape[1] == frames * cfg.hop_length
    torch.testing.assert_close(rebuilt[:, :samples], signal, rtol=0, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_matches_pytorch_chunk_by_chunk() -> None:
    ort = pytest.importorskip("onnxruntime")
    model = _tiny_model()
    names = list(VocoderState._fields)

    class Step(torch.nn.Module):
        def __init__(self, vocoder: Vocoder) -> None:
            super().__init__()
            self.vocoder = vocoder

        def forward(self, mel: torch.Tensor, *state: torch.Tensor):
            wave, new_state = self.vocoder.forward_chunk(mel, VocoderState(*state))
            return (wave, *new_state)

    buffer = io.BytesIO()
    state = model.init_state(1)
    torch.onnx.export(
        Step(model),
        (_random_mel(1, 4), *state),
        buffer,
        opset_version=17,
        dynamo=False,
        input_names=["mel", *names],
        output_names=["wave", *(f"new_{n}" for n in names)],
        dynamic_axes={
            "mel": {0: "batch", 2: "frames"},
            "wave": {0: "batch", 1: "samples"},
            **{n: {0: "batch"} for n in names},
        },
    )
    session = ort.InferenceSession(
        buffer.getvalue(), providers=["CPUExecutionProvider"]
    )
    mel = _random_mel(2, 11)
    feeds = {n: t.numpy() for n, t in zip(names, model.init_state(2), strict=True)}
    state = model.init_state(2)
    with torch.no_grad():
        for start, size in ((0, 4), (4, 1), (5, 6)):
            chunk = mel[:, :, start : start + size]
            wave, state = model.forward_chunk(chunk, state)
            outputs = session.run(None, {"mel": chunk.numpy(), **feeds})
            np.testing.assert_allclose(outputs[0], wave.numpy(), rtol=0, atol=1e-5)
            feeds = dict(zip(names, outputs[1:], strict=True))
            for name, value in zip(names, state, strict=True):
                np.testing.assert_allclose(
                    feeds[name], value.numpy(), rtol=0, atol=1e-5
                )


def test_save_load_round_trip(tmp_path) -> None:
    model = _tiny_model()
    save_vocoder(model, tmp_path / "voc")
    loaded = load_vocoder(tmp_path / "voc")
    assert loaded.config == model.config
    assert not loaded.training
    reference = _tiny_model()
    with torch.no_grad():
        for parameter in reference.parameters():  # what fp16 storage keeps
            parameter.copy_(parameter.half().float())
        mel = _random_mel(1, 9)
        torch.testing.assert_close(loaded(mel), reference(mel), rtol=0, atol=1e-6)


def test_default_config_fits_the_size_budget(tmp_path) -> None:
    model = Vocoder(VocoderConfig())
    save_vocoder(model, tmp_path)
    size = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert size <= 16 * 2**20


def test_griffin_lim_keeps_a_tone_frequency() -> None:
    config = MelConfig()
    rate = config.sample_rate
    time = torch.arange(2 * rate) / rate
    for frequency in (440.0, 1500.0):
        tone = 0.5 * torch.sin(2 * math.pi * frequency * time)
        mel = MelSpectrogram(config)(tone[None])[0]
        wave = griffin_lim(mel, config, n_iter=16)
        assert wave.dtype == np.float32 and wave.shape == (
            mel.shape[1] * config.hop_length,
        )
        spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
        peak = np.argmax(spectrum) * rate / wave.size
        assert abs(peak - frequency) < 0.03 * frequency
        assert 0.2 < float(np.sqrt(np.mean(wave**2))) < 0.5  # the tone's RMS is 0.35


def _write_corpus(root, count: int = 4, seconds: float = 1.0) -> None:
    """An LJSpeech-layout folder of harmonic tones with gliding pitch."""
    import wave

    rate = 16000
    (root / "wavs").mkdir(parents=True)
    generator = np.random.default_rng(0)
    lines = []
    for i in range(count):
        time = np.arange(int(seconds * rate)) / rate
        f0 = 120 + 40 * i + 30 * np.sin(2 * np.pi * 0.7 * time)
        phase = 2 * np.pi * np.cumsum(f0) / rate
        signal = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6))
        signal = signal + 0.01 * generator.standard_normal(time.size)
        pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2")
        with wave.open(str(root / "wavs" / f"utt{i}.wav"), "wb") as file:
            file.setnchannels(1)
            file.setsampwidth(2)
            file.setframerate(rate)
            file.writeframes(pcm.tobytes())
        lines.append(f"utt{i}|tone {i}\n")
    (root / "metadata.csv").write_text("".join(lines))


def _train(data, out, *extra: str) -> None:
    from recipes.tts import train_vocoder

    train_vocoder.main([
        "--data", str(data), "--out", str(out), "--device", "cpu",
        "--total-steps", "6", "--adversarial-start", "2", "--warmup", "2",
        "--batch-size", "2", "--segment-frames", "8", "--context-frames", "4",
        "--dim", "16", "--intermediate-dim", "32", "--layers", "2",
        "--mpd-channels", "4,4,4,4,4", "--mrd-channels", "4", "--val-size", "1",
        "--save-every", "100", "--eval-every", "100", "--log-every", "1", *extra,
    ])  # fmt: skip


@pytest.mark.slow
def test_training_resumes_exactly(tmp_path) -> None:
    """3 steps, stop, resume to 6 == 6 steps in one go (the adversarial phase
    starts at step 2, so both optimizers are resumed mid-flight)."""
    _write_corpus(tmp_path / "data")
    _train(tmp_path / "data", tmp_path / "whole")
    _train(tmp_path / "data", tmp_path / "split", "--max-steps", "3")
    assert (
        torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=False)["step"]
        == 3
    )
    _train(tmp_path / "data", tmp_path / "split")
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)
    split = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=False)
    assert whole["step"] == split["step"] == 6
    for part in ("generator", "discriminators"):
        for name, value in whole[part].items():
            assert torch.equal(value, split[part][name]), f"{part}.{name}"
    for part in ("optimizer_g", "optimizer_d"):
        for index, state in whole[part]["state"].items():
            for key, value in state.items():
                assert torch.equal(value, split[part]["state"][index][key]), (part, key)
    vocoder = load_vocoder(tmp_path / "split" / "vocoder")
    assert vocoder.config.dim == 16
    assert any((tmp_path / "split" / "tb").iterdir())


@torch.inference_mode()
def test_pass_band_removes_energy_outside_it() -> None:
    """Bins outside [min_frequency, max_frequency] are zeroed before the
    inverse STFT: no Nyquist buzz, no DC offset, the band itself untouched."""
    import dataclasses

    mel = _random_mel(1, 60)
    full = _tiny_model()
    config = dataclasses.replace(TINY, min_frequency=100.0, max_frequency=6000.0)
    banded = Vocoder(config)
    banded.load_state_dict(full.state_dict())
    banded.eval()
    rate = TINY.mel.sample_rate

    def spectrum(model: Vocoder) -> tuple[np.ndarray, np.ndarray]:
        audio = model(mel)[0].numpy()
        power = np.abs(np.fft.rfft(audio)) ** 2
        return np.fft.rfftfreq(len(audio), 1 / rate), power

    freqs, power_full = spectrum(full)
    _, power_band = spectrum(banded)
    high, low = freqs > 6100, freqs < 50
    # the random head fills those bins; the band empties them
    assert power_full[high].sum() / power_full.sum() > 1e-2
    assert power_band[high].sum() / power_band.sum() < 1e-3  # edges leak a little
    assert power_band[low].sum() / power_band.sum() < 1e-3
    inside = (freqs > 300) & (freqs < 5800)
    np.testing.assert_allclose(
        power_band[inside].sum(), power_full[inside].sum(), rtol=0.05
    )
    # the band applies to streaming alike
    streamed, state = _stream(banded, mel, [7, 1, 20, 32])
    tail = banded.flush(state)
    offline = banded(mel)
    joined = torch.cat([streamed, tail], dim=1)[:, banded.delay_samples :]
    torch.testing.assert_close(
        joined[:, : offline.shape[1]], offline, atol=1e-5, rtol=1e-5
    )


def test_pass_band_must_be_ordered() -> None:
    import dataclasses

    with pytest.raises(ValueError, match="pass band"):
        dataclasses.replace(TINY, min_frequency=5000.0, max_frequency=4000.0)
