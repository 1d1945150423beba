"""Incremental FastPitch: streaming parity, alignment, pitch, save/load, recipe."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speech.tts.alignment import (
    Aligner,
    beta_binomial_log_prior,
    binarization_loss,
    forward_sum_loss,
    monotonic_alignment_search,
)
from speech.tts.config import FastPitchConfig
from speech.tts.decoder import (
    IncrementalDecoder,
    chunk_context_distance,
    decoder_receptive_field,
    stack_states,
    unstack_states,
)
from speech.tts.fastpitch import FastPitch, load_tts, regulate_length, save_tts
from speech.tts.pitch import average_per_symbol, estimate_f0, normalize_pitch

REPO = Path(__file__).resolve().parent.parent
SYMBOLS = tuple(f"s{i}" for i in range(20))


def tiny_config(**changes) -> FastPitchConfig:
    base = dict(
        symbols=SYMBOLS,
        model_dim=32,
        num_heads=2,
        ffn_dim=48,
        encoder_layers=2,
        decoder_layers=2,
        predictor_dim=24,
        chunk_size=4,
        past_context=6,
        dropout=0.0,
        attention_dropout=0.0,
    )
    base.update(changes)
    return FastPitchConfig(**base)


def tiny_decoder(
    chunk: int, past: int, layers: int = 2, kernel: int = 3, seed: int = 0
):
    torch.manual_seed(seed)
    return IncrementalDecoder(
        dim=16,
        num_layers=layers,
        num_heads=2,
        ffn_dim=24,
        kernel_size=kernel,
        mel_dim=5,
        chunk_size=chunk,
        past_context=past,
        dropout=0.1,
    ).eval()


def stream_decode(decoder: IncrementalDecoder, x: torch.Tensor) -> torch.Tensor:
    state = decoder.init_state(x.shape[0])
    outputs = []
    for start in range(0, x.shape[1], decoder.chunk_size):
        mel, state = decoder.forward_chunk(
            x[:, start : start + decoder.chunk_size], state
        )
        outputs.append(mel)
    return torch.cat(outputs, dim=1)


# --- decoder ------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=3),
    chunk=st.integers(1, 8),
    past=st.integers(0, 12),
    kernel=st.sampled_from([1, 3]),
    seed=st.integers(0, 1000),
)
def test_streaming_equals_masked_full_decode(lengths, chunk, past, kernel, seed):
    decoder = tiny_decoder(chunk, past, kernel=kernel, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    frames = max(lengths)
    x = torch.randn(len(lengths), frames, 16, generator=generator)
    full = decoder(x, torch.tensor(lengths))
    for b, length in enumerate(lengths):
        streamed = stream_decode(decoder, x[b : b + 1, :length])
        assert streamed.shape == (1, length, 5)
        torch.testing.assert_close(streamed[0], full[b, :length], atol=1e-5, rtol=0)
    assert not full[0, lengths[0] :].any()  # padding stays zero


def test_streams_at_different_offsets_batch_together():
    decoder = tiny_decoder(4, 6)
    x = torch.randn(2, 24, 16)
    # Stream 0 is two chunks ahead of stream 1; batch their next chunks.
    s0, s1 = decoder.init_state(1), decoder.init_state(1)
    out0 = []
    for start in (0, 4):
        mel, s0 = decoder.forward_chunk(x[:1, start : start + 4], s0)
        out0.append(mel)
    out1 = []
    for step in range(3):
        batched = stack_states([s0, s1])
        chunk = torch.cat(
            [x[:1, 8 + 4 * step : 12 + 4 * step], x[1:, 4 * step : 4 + 4 * step]]
        )
        mel, batched = decoder.forward_chunk(chunk, batched)
        s0, s1 = unstack_states(batched)
        out0.append(mel[:1])
        out1.append(mel[1:])
    full = decoder(x, torch.tensor([20, 12]))
    torch.testing.assert_close(torch.cat(out0, 1)[0], full[0, :20], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat(out1, 1)[0], full[1, :12], atol=1e-5, rtol=0)


def test_state_has_fixed_size():
    decoder = tiny_decoder(4, 6, layers=3)
    state = decoder.init_state(2)
    shapes = [tuple(t.shape) for t in state]
    for _ in range(8):
        _, state = decoder.forward_chunk(torch.randn(2, 4, 16), state)
        assert [tuple(t.shape) for t in state] == shapes
    assert shapes[:3] == [(3, 2, 6, 16), (3, 2, 6, 16), (3, 2, 2, 16)]
    assert state.processed.tolist() == [32, 32]
    with pytest.raises(ValueError):
        decoder.forward_chunk(torch.randn(2, 0, 16), state)


@settings(max_examples=15, deadline=None)
@given(
    length=st.integers(1, 40),
    chunk=st.integers(1, 6),
    past=st.integers(0, 10),
    plan=st.lists(st.integers(1, 4), min_size=1, max_size=12),
    seed=st.integers(0, 1000),
)
def test_several_chunks_per_call_equal_one_per_call(length, chunk, past, plan, seed):
    """Calls of whole numbers of chunks (any mix) give the masked decode."""
    decoder = tiny_decoder(chunk, past, seed=seed)
    x = torch.randn(2, length, 16, generator=torch.Generator().manual_seed(seed))
    full = decoder(x, torch.tensor([length, length]))
    state, outputs, start = decoder.init_state(2), [], 0
    for chunks in itertools.cycle(plan):
        if start >= length:
            break
        mel, state = decoder.forward_chunk(x[:, start : start + chunks * chunk], state)
        outputs.append(mel)
        start += chunks * chunk
    torch.testing.assert_close(torch.cat(outputs, 1), full, atol=1e-5, rtol=0)
    assert (
        state.keys.shape == (2, 2, past, 16)
        and state.processed.tolist() == [length] * 2
    )


@pytest.mark.parametrize(
    "chunk,past,layers,kernel", [(4, 6, 2, 3), (3, 3, 3, 3), (5, 0, 2, 1)]
)
def test_receptive_field_is_exact(chunk, past, layers, kernel):
    decoder = tiny_decoder(chunk, past, layers=layers, kernel=kernel)
    field = decoder_receptive_field(layers, chunk, past, kernel - 1)
    frames = field + 3 * chunk
    chunk_start = (frames // chunk - 1) * chunk  # the last whole chunk
    x = torch.randn(1, frames, 16, requires_grad=True)
    mel = decoder(x, torch.tensor([frames]))
    mel[0, chunk_start].sum().backward()  # first frame of that chunk
    reached = x.grad[0].abs().sum(-1).nonzero().min().item()
    assert chunk_start + chunk - reached == field


def test_default_receptive_field():
    c = FastPitchConfig()
    assert (
        decoder_receptive_field(c.decoder_layers, c.chunk_size, c.past_context, 2)
        == 272
    )


def test_context_distance():
    decoder = tiny_decoder(4, 4)
    x = torch.randn(2, 30, 16)
    short = chunk_context_distance(decoder, x[:, :4], torch.tensor([4, 3]))
    assert short.l1 < 1e-6  # one chunk: the mask restricts nothing
    longer = chunk_context_distance(decoder, x, torch.tensor([30, 17]))
    assert longer.l1 > 1e-3 and longer.mse > 0


# --- model --------------------------------------------------------------------


def test_regulate_length():
    x = torch.arange(6.0).view(2, 3, 1)
    frames, lengths = regulate_length(x, torch.tensor([[1, 0, 2], [2, 1, 0]]))
    assert lengths.tolist() == [3, 3]
    assert frames[..., 0].tolist() == [[0.0, 2.0, 2.0], [3.0, 3.0, 4.0]]


def test_encoder_ignores_padding():
    model = FastPitch(tiny_config()).eval()
    ids = torch.randint(1, 20, (2, 9))
    ids[1, 5:] = 0
    batched = model.encoder(ids, torch.tensor([9, 5]))
    alone = model.encoder(ids[1:, :5], torch.tensor([5]))
    torch.testing.assert_close(batched[1, :5], alone[0], atol=1e-5, rtol=0)
    assert not batched[1, 5:].any()


def test_forward_shapes_and_streaming_inference():
    model = FastPitch(tiny_config()).eval()
    ids = torch.randint(1, 20, (2, 7))
    durations = torch.randint(0, 4, (2, 7))
    out = model(
        ids, torch.tensor([7, 5]), durations, torch.randn(2, 7), torch.randn(2, 7)
    )
    total = durations.sum(1).tolist()
    total[1] = int(durations[1, :5].sum())
    assert out.mel.shape == (2, max(total), 80)
    assert out.mel_lengths.tolist() == total
    assert out.log_durations.shape == out.pitch.shape == out.energy.shape == (2, 7)

    with torch.no_grad():
        model.duration_predictor.out.bias.fill_(1.5)
    mel, lengths = model.infer(ids[:1])
    prosody = model.prosody(ids[:1])
    streamed = stream_decode(model.decoder, prosody.frames)
    torch.testing.assert_close(streamed, mel, atol=1e-5, rtol=0)
    fast, fast_lengths = model.infer(ids[:1], pace=2.0)
    assert abs(fast_lengths.item() - lengths.item() / 2) <= 7
    shifted = model.prosody(ids[:1], pitch_shift=12.0).pitch
    expected = 12 * math.log(2) / 12 / model.config.pitch_std
    torch.testing.assert_close(
        shifted - prosody.pitch, torch.full_like(shifted, expected)
    )


def test_save_and_load(tmp_path):
    config = tiny_config(pitch_mean=5.1, pitch_std=0.13, energy_mean=1.5)
    model = FastPitch(config).eval()
    save_tts(model, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["symbols"] == list(SYMBOLS) and saved["pitch_std"] == 0.13
    loaded = load_tts(tmp_path)
    assert loaded.config == config
    for name, tensor in loaded.state_dict().items():
        expected = model.state_dict()[name].half().float()
        torch.testing.assert_close(tensor, expected, atol=0, rtol=0)
    assert FastPitchConfig.from_json(config.to_json()) == config


def test_default_model_fits_size_budget():
    from speech.text.phonemize import PHONEME_SYMBOLS

    model = FastPitch(FastPitchConfig(symbols=PHONEME_SYMBOLS))
    parameters = sum(p.numel() for p in model.parameters())
    assert parameters * 2 <= 16e6  # fp16 bytes


# --- alignment ------------------------------------------------------------------


def brute_force_durations(scores: np.ndarray, symbols: int, frames: int) -> list[int]:
    best, best_bounds = -np.inf, None
    for cuts in itertools.combinations(range(1, frames), symbols - 1):
        bounds = [0, *cuts, frames]
        total = sum(scores[bounds[i] : bounds[i + 1], i].sum() for i in range(symbols))
        if total > best:
            best, best_bounds = total, bounds
    return [best_bounds[i + 1] - best_bounds[i] for i in range(symbols)]


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_monotonic_alignment_search_is_optimal(data):
    batch = data.draw(st.integers(1, 3))
    symbols = [data.draw(st.integers(1, 4)) for _ in range(batch)]
    frames = [data.draw(st.integers(s, 8)) for s in symbols]
    seed = data.draw(st.integers(0, 10_000))
    scores = torch.randn(
        batch, max(frames), max(symbols), generator=torch.Generator().manual_seed(seed)
    )
    hard = monotonic_alignment_search(
        scores, torch.tensor(symbols), torch.tensor(frames)
    )
    for b in range(batch):
        durations = hard[b].sum(0)[: symbols[b]].long().tolist()
        assert durations == brute_force_durations(
            scores[b].numpy(), symbols[b], frames[b]
        )
        assert hard[b].sum().item() == frames[b]
        assert hard[b, frames[b] :].sum() == 0 and hard[b, :, symbols[b] :].sum() == 0


def test_beta_binomial_prior_rows_are_distributions():
    prior = beta_binomial_log_prior(torch.tensor([5, 3]), torch.tensor([12, 7]))
    assert prior.shape == (2, 12, 5)
    torch.testing.assert_close(prior[0].exp().sum(-1), torch.ones(12))
    torch.testing.assert_close(prior[1, :7, :3].exp().sum(-1), torch.ones(7))
    assert prior[0, 0].argmax() == 0 and prior[0, -1].argmax() == 4


def test_aligner_losses_are_finite_and_learn_a_diagonal():
    torch.manual_seed(0)
    symbols = 6
    aligner = Aligner(text_dim=8, mel_dim=10, dim=8)
    text = torch.randn(2, symbols, 8, requires_grad=True)
    # Mel frames that copy a per-symbol pattern, 4 frames per symbol.
    patterns = torch.randn(symbols, 10) * 3
    mel = patterns.repeat_interleave(4, 0)[None].repeat(2, 1, 1)
    text_lengths, mel_lengths = torch.tensor([6, 4]), torch.tensor([24, 16])
    mel[1, 16:] = 0
    optimizer = torch.optim.Adam([*aligner.parameters(), text], lr=3e-2)
    for _ in range(150):
        out = aligner(text, text_lengths, mel, mel_lengths)
        loss = forward_sum_loss(out.log_prob, text_lengths, mel_lengths)
        optimizer.zero_grad()
        loss.backward()
        assert all(
            torch.isfinite(p.grad).all()
            for p in aligner.parameters()
            if p.grad is not None
        )
        optimizer.step()
    out = aligner(text, text_lengths, mel, mel_lengths)
    hard = monotonic_alignment_search(out.log_prob, text_lengths, mel_lengths)
    durations = hard[0].sum(0)
    assert durations.sum() == 24 and (durations - 4).abs().max() <= 1  # near diagonal
    assert torch.isfinite(binarization_loss(hard, out.soft))
    torch.testing.assert_close(out.soft[1, :16].sum(-1), torch.ones(16))
    assert out.soft[1, 16:].sum() == 0 and out.soft[1, :, 4:].sum() < 1e-6


# --- pitch ------------------------------------------------------------------------


@pytest.mark.parametrize("f0", [70.0, 110.0, 185.0, 260.0, 440.0])
def test_f0_of_harmonic_tones(f0):
    t = torch.arange(16000) / 16000
    wave = sum(0.3 / k * torch.sin(2 * math.pi * f0 * k * t + k) for k in range(1, 6))
    estimate = estimate_f0(wave)
    assert estimate.shape == (16000 // 256 + 1,)
    inner = estimate[4:-4]
    assert (inner > 0).all()
    assert (inner - f0).abs().max() < 0.01 * f0


def test_f0_unvoiced_on_noise_and_silence():
    generator = torch.Generator().manual_seed(0)
    noise = 0.1 * torch.randn(2, 8000, generator=generator)
    noise[1] = 0
    f0 = estimate_f0(noise)
    assert f0.shape == (2, 8000 // 256 + 1)
    assert (f0 > 0).float().mean() < 0.05


def test_pitch_averaging_and_normalisation():
    f0 = torch.tensor([[100.0, 0.0, 200.0, 0.0, 0.0]])
    z = normalize_pitch(f0, math.log(100.0), 1.0)
    assert z[0, 1] == 0 and z[0, 0] == 0 and abs(z[0, 2] - math.log(2.0)) < 1e-6
    averaged = average_per_symbol(f0, torch.tensor([[3, 2]]), (f0 > 0).float())
    assert averaged.tolist() == [[150.0, 0.0]]


# --- recipe -------------------------------------------------------------------------

TEXTS = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
]


@pytest.fixture(scope="module")
def flite_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    (root / "wavs").mkdir()
    lines = []
    for i, text in enumerate(TEXTS):
        subprocess.run(
            [
                "flite",
                "-voice",
                "slt",
                "-t",
                text,
                "-o",
                str(root / "wavs" / f"u{i}.wav"),
            ],
            check=True,
        )
        lines.append(f"u{i}|{text}|{text}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


RECIPE_FLAGS = (
    "--device cpu --total-steps 8 --model-dim 32 --ffn-dim 48 --encoder-layers 1 "
    "--decoder-layers 2 --batch-frames 600 --max-batch 3 --warmup 2 --workers 1 "
    "--val-size 1 --save-every 3 --eval-every 4 --log-every 2 --bin-start 0.25 "
    "--bin-ramp 0.25 --deterministic"
).split()


def run_recipe(data: Path, out: Path, *extra: str) -> str:
    module = "recipes.tts.train_fastpitch"
    command = [sys.executable, "-m", module, "--data", str(data), "--out", str(out)]
    command += [*RECIPE_FLAGS, *extra]
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_recipe_resume_is_exact(flite_corpus, tmp_path):
    whole = tmp_path / "whole"
    stdout = run_recipe(flite_corpus, whole)
    assert "steps/s" in stdout.strip().splitlines()[-1]
    parted = tmp_path / "parted"
    run_recipe(flite_corpus, parted, "--max-steps", "5")
    assert torch.load(parted / "checkpoint.pt", weights_only=False)["step"] == 5
    run_recipe(flite_corpus, parted)
    a = torch.load(whole / "checkpoint.pt", weights_only=False)
    b = torch.load(parted / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 8
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    model = load_tts(parted / "tts")
    assert (
        model.config.pitch_std != FastPitchConfig().pitch_std
    )  # stats from the corpus
    assert (parted / "tensorboard").is_dir() and (parted / "features.pt").is_file()
