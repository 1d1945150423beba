"""Streaming Vocos-style vocoder: log-mel frames -> waveform.

mel -> causal conv embedding -> causal ConvNeXt blocks -> linear head ->
log-magnitude and phase per frame -> inverse DFT (a matmul with a fixed
cos/sin basis, window folded in) -> overlap-add.

Streaming: every convolution over time is causal (zero look-ahead; its left
context comes from a cache of ``kernel_size - 1`` frames) and every
normalisation is a LayerNorm over the channels of one frame, so a frame's
spectrum depends on that frame and the past only. Running a mel in chunks of
any size gives the same audio as running it whole.

Sample alignment. Mel frame t is centred on source sample ``t * hop``
(``MelSpectrogram`` pads the source by ``n_fft / 2`` on both sides). The
vocoder places the synthesis window of frame t on *stream* samples
``[t * hop, t * hop + n_fft)``, i.e. on the same span as the analysis window
in the padded source, so stream sample u is source sample ``u - n_fft / 2``.
Stream samples ``[t * hop, (t + 1) * hop)`` are complete once frame t is in
(no later frame reaches back before its own start), so ``forward_chunk``
returns exactly ``Tc * hop`` samples per call and carries the unfinished
``n_fft - hop`` samples of overlap in its state. Dropping the first
``delay_samples = n_fft / 2`` stream samples (the centre padding) gives the
source timeline, where frame t stands for samples ``[t * hop, (t + 1) * hop)``;
the last ``n_fft / 2`` samples of the utterance come from ``flush``::

    cat([chunk outputs..., flush(state)])[:, delay_samples:] == forward(mel)

with ``forward(mel)`` of shape (B, T * hop): the length of a source of
``S`` samples whose mel has ``T = S // hop + 1`` frames, rounded up to whole
hops (its first ``S`` samples align with the source).

Overlap-add normalisation: output samples are divided by the sum of squared
windows of the frames that actually cover them. In steady state that sum is a
constant (1.5 for a periodic Hann window at 75 % overlap); only the first
``n_fft - hop`` stream samples of an utterance and its flushed end see fewer
frames, which the per-stream frame counter in the state accounts for.

Letters: B streams, T frames, Tc frames in a chunk, M mel bins, D model
width, L layers, K kernel size, F = n_fft // 2 + 1 frequency bins,
N = n_fft, H = hop, R = N / H windows over each sample.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech.tts.audio import MelConfig

__all__ = [
    "Vocoder",
    "VocoderConfig",
    "VocoderState",
    "load_vocoder",
    "save_vocoder",
    "stack_states",
    "unstack_states",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "vocoder.pt"


@dataclass(frozen=True)
class VocoderConfig:
    dim: int = 256
    intermediate_dim: int = 768
    num_layers: int = 8
    kernel_size: int = 7  # depthwise kernel of each ConvNeXt block (causal)
    input_kernel_size: int = 7  # kernel of the mel embedding conv (causal)
    layer_scale_init: float | None = None  # None: 1 / num_layers
    max_magnitude: float = 1000.0  # clip of linear magnitudes (speech peaks ~150)
    envelope_floor: float = 0.1  # smallest window-sum divisor at stream edges
    # Pass band of the synthesised spectrum (Hz; None: up to Nyquist). Bins
    # outside it are zeroed before the inverse STFT: a corpus with no energy
    # there (e.g. speech band-limited below 8 kHz) leaves the head free to put
    # a Nyquist buzz or a DC offset in them, loudest at sentence edges.
    min_frequency: float = 0.0
    max_frequency: float | None = None
    mel: MelConfig = field(default_factory=MelConfig)

    def __post_init__(self) -> None:
        n_fft, hop = self.mel.n_fft, self.mel.hop_length
        if self.mel.win_length != n_fft:
            raise ValueError("the vocoder needs win_length == n_fft")
        if n_fft % hop or 2 * hop > n_fft:
            raise ValueError(f"n_fft {n_fft} must be a multiple of 2 * hop {hop}")
        if self.kernel_size < 1 or self.input_kernel_size < 1:
            raise ValueError("kernel sizes must be positive")
        top = self.max_frequency
        if self.min_frequency < 0 or (top is not None and top <= self.min_frequency):
            raise ValueError(
                f"pass band {self.min_frequency}-{top} Hz: need 0 <= min < max"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VocoderConfig:
        values = dict(values)
        values["mel"] = MelConfig(**values.get("mel", {}))
        return cls(**values)


class VocoderState(NamedTuple):
    """Fixed-size streaming state; only the batch dimension B varies.

    mel_cache: (B, M, input_kernel_size - 1) last mel frames (silence at start).
    conv_cache: (B, L, K - 1, D) last inputs of each block's depthwise conv.
    overlap: (B, N - H) overlap-add sums of stream samples not yet complete.
    frames: (B,) int64 frames processed so far (drives the edge normalisation).
    """

    mel_cache: Tensor
    conv_cache: Tensor
    overlap: Tensor
    frames: Tensor


def stack_states(states: list[VocoderState]) -> VocoderState:
    """Batch several streams' states (each with its own batch size)."""
    return VocoderState(
        *(torch.cat(parts, dim=0) for parts in zip(*states, strict=True))
    )


def unstack_states(state: VocoderState) -> list[VocoderState]:
    """Split a batched state into one state of batch 1 per stream."""
    return [
        VocoderState(*(part[i : i + 1] for part in state))
        for i in range(state.frames.shape[0])
    ]


class _ConvNeXtBlock(nn.Module):
    """Causal depthwise conv -> LN -> Linear (D -> I) -> GELU -> Linear (I -> D),
    scaled by a learned per-channel gain and added to the input."""

    def __init__(
        self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale: float
    ) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.up = nn.Linear(dim, intermediate_dim)
        self.down = nn.Linear(intermediate_dim, dim)
        self.gain = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor, cache: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D), cache (B, K - 1, D) -> (B, T, D), new cache."""
        window = torch.cat([cache.to(x.dtype), x], dim=1)  # (B, K - 1 + T, D)
        keep = cache.shape[1]
        new_cache = window[:, window.shape[1] - keep :]
        if torch.onnx.is_in_onnx_export():  # Unfold has no ONNX export
            y = self.depthwise(window.transpose(1, 2)).transpose(1, 2)  # (B, T, D)
        else:
            # The same conv as a weighted sum of K shifted frames: on a CPU
            # and a few frames ~8x faster than Conv1d.
            taps = window.unfold(1, keep + 1, 1)  # (B, T, D, K)
            y = (taps * self.depthwise.weight[:, 0]).sum(-1) + self.depthwise.bias
        y = self.down(F.gelu(self.up(self.norm(y))))
        return x + self.gain * y, new_cache


def _inverse_dft_basis(n_fft: int, window: Tensor) -> Tensor:
    """(2F, N): [Re X, Im X] @ basis = window * irfft(X), for one-sided X."""
    bins = n_fft // 2 + 1
    k = torch.arange(bins, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]
    angle = 2 * math.pi * k * n / n_fft
    # Bins 0 and N/2 appear once in the full spectrum, the others twice.
    weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
    weight[0] = weight[-1] = 1.0
    cos = weight * torch.cos(angle) / n_fft
    sin = -weight * torch.sin(angle) / n_fft
    return (torch.cat([cos, sin], dim=0) * window.double()).float()


def _envelope_tables(window: Tensor, hop: int, floor: float) -> tuple[Tensor, Tensor]:
    """Reciprocal window-square sums at the edges of a stream.

    Returns:
        start: (N - H + 1,) 1 / envelope of stream sample u < N - H (only frames
            0, 1, ... exist); the last entry is the steady-state value.
        end: (R, N / 2) 1 / envelope of the first N / 2 samples after the last
            frame T - 1, for min(T, R - 1) = 0 .. R - 1 frames before them.
    """
    n_fft = window.shape[0]
    ratio = n_fft // hop
    square = window.double() ** 2
    steady = square.reshape(ratio, hop).sum(0)
    if float(steady.max() - steady.min()) > 1e-6 * float(steady.max()):
        raise ValueError("window squares do not add up to a constant at this hop")
    start = torch.zeros(n_fft - hop + 1, dtype=torch.float64)
    for t in range(ratio):  # frame t covers stream samples [t * H, t * H + N)
        start[t * hop : n_fft - hop] += square[: n_fft - hop - t * hop]
    start[-1] = steady[0]
    half = n_fft // 2
    end = torch.zeros(ratio, half, dtype=torch.float64)
    for frames_before in range(ratio):
        for j in range(1, min(frames_before, ratio - 1) + 1):
            # frame T - j reaches sample T * H + i at its window index j * H + i
            part = square[j * hop : j * hop + half]
            end[frames_before, : part.shape[0]] += part
    return (1.0 / start.clamp(min=floor)).float(), (1.0 / end.clamp(min=floor)).float()


class Vocoder(nn.Module):
    """Causal Vocos: log-mel (B, M, T) -> waveform (B, T * H)."""

    def __init__(self, config: VocoderConfig = VocoderConfig()) -> None:
        super().__init__()
        self.config = config
        mel = config.mel
        scale = config.layer_scale_init or 1.0 / config.num_layers
        self.embed = nn.Conv1d(mel.n_mels, config.dim, config.input_kernel_size)
        self.embed_norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            _ConvNeXtBlock(
                config.dim, config.intermediate_dim, config.kernel_size, scale
            )
            for _ in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.bins = mel.n_fft // 2 + 1
        self.head = nn.Linear(config.dim, 2 * self.bins)  # log-magnitude, phase
        window = torch.hann_window(mel.n_fft)
        start, end = _envelope_tables(window, mel.hop_length, config.envelope_floor)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer(
            "basis", _inverse_dft_basis(mel.n_fft, window), persistent=False
        )
        frequencies = torch.arange(self.bins) * (mel.sample_rate / mel.n_fft)
        band = frequencies >= config.min_frequency
        if config.max_frequency is not None:
            band &= frequencies <= config.max_frequency
        self.register_buffer("band_mask", band.float(), persistent=False)
        self.register_buffer("inv_envelope_start", start, persistent=False)
        self.register_buffer("inv_envelope_end", end, persistent=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    @property
    def hop_length(self) -> int:
        return self.config.mel.hop_length

    @property
    def delay_samples(self) -> int:
        """Stream samples before source sample 0 (the centre padding)."""
        return self.config.mel.n_fft // 2

    def init_state(
        self,
        batch: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> VocoderState:
        """State of ``batch`` new streams: silence before the first frame."""
        cfg = self.config
        mel_cache = torch.full(
            (batch, cfg.mel.n_mels, cfg.input_kernel_size - 1),
            math.log(cfg.mel.log_floor),
            device=device,
            dtype=dtype,
        )
        conv_cache = torch.zeros(
            batch,
            cfg.num_layers,
            cfg.kernel_size - 1,
            cfg.dim,
            device=device,
            dtype=dtype,
        )
        overlap = torch.zeros(
            batch, cfg.mel.n_fft - cfg.mel.hop_length, device=device, dtype=dtype
        )
        frames = torch.zeros(batch, dtype=torch.int64, device=device)
        return VocoderState(mel_cache, conv_cache, overlap, frames)

    def forward(self, mel: Tensor) -> Tensor:
        """Whole utterances: log-mel (B, M, T) -> waveform (B, T * H) on the
        source timeline (centre padding dropped)."""
        state = self.init_state(mel.shape[0], mel.device, mel.dtype)
        wave, state = self.forward_chunk(mel, state)
        wave = torch.cat([wave, self.flush(state)], dim=1)
        return wave[:, self.delay_samples :]

    def forward_chunk(
        self, mel: Tensor, state: VocoderState
    ) -> tuple[Tensor, VocoderState]:
        """Next frames of each stream: log-mel (B, M, Tc) -> stream samples
        (B, Tc * H) completed by these frames, and the new state."""
        features, mel_cache, conv_cache = self.encode(mel, state)
        wave, overlap = self.synthesize(features, state)
        frames = state.frames + mel.shape[2]
        return wave, VocoderState(mel_cache, conv_cache, overlap, frames)

    def flush(self, state: VocoderState) -> Tensor:
        """End of each stream: (B, N / 2) last source samples, completing the
        final frame's hop (frames after it are taken as silence)."""
        half = self.config.mel.n_fft // 2
        row = state.frames.clamp(max=self.inv_envelope_end.shape[0] - 1)
        return state.overlap[:, :half] * self.inv_envelope_end[row].to(
            state.overlap.dtype
        )

    def encode(self, mel: Tensor, state: VocoderState) -> tuple[Tensor, Tensor, Tensor]:
        """Backbone: log-mel (B, M, Tc) -> features (B, Tc, D), new mel cache,
        new conv cache."""
        window = torch.cat([state.mel_cache.to(mel.dtype), mel], dim=2)
        keep = state.mel_cache.shape[2]
        mel_cache = window[:, :, window.shape[2] - keep :]
        x = self.embed_norm(self.embed(window).transpose(1, 2))  # (B, Tc, D)
        caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, state.conv_cache[:, i])
            caches.append(cache)
        return self.final_norm(x), mel_cache, torch.stack(caches, dim=1)

    def synthesize(
        self, features: Tensor, state: VocoderState
    ) -> tuple[Tensor, Tensor]:
        """Head and inverse STFT: features (B, Tc, D) -> completed stream
        samples (B, Tc * H), new overlap (B, N - H).

        Runs in the head's dtype with autocast off, so mixed-precision training
        keeps the spectrum and the overlap-add in float32.
        """
        with torch.autocast(device_type=features.device.type, enabled=False):
            features = features.to(self.head.weight.dtype)
            log_magnitude, phase = self.head(features).split(self.bins, dim=2)
            log_magnitude = log_magnitude.clamp(max=math.log(self.config.max_magnitude))
            magnitude = torch.exp(log_magnitude) * self.band_mask
            spectrum = torch.cat(
                [magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=2
            )  # (B, Tc, 2F)
            return self.inverse_stft(spectrum, state)

    def inverse_stft(
        self, spectrum: Tensor, state: VocoderState
    ) -> tuple[Tensor, Tensor]:
        """One-sided spectra [real; imaginary] (B, Tc, 2F) -> completed stream
        samples (B, Tc * H), new overlap (B, N - H). The inverse of
        ``torch.stft(center=True)`` with a Hann window, shifted by the centre
        padding (see the module docstring)."""
        if torch.onnx.is_in_onnx_export():
            # A matmul with a fixed basis exports to any opset; in eager mode
            # the FFT is ~30x faster (the 4 MB basis makes the matmul
            # memory-bound).
            frames = spectrum @ self.basis  # (B, Tc, N) windowed inverse DFT
        else:
            real, imag = spectrum.split(self.bins, dim=2)
            frames = torch.fft.irfft(torch.complex(real, imag), n=self.basis.shape[1])
            frames = frames * self.window  # (B, Tc, N)
        return self._overlap_add(frames, state)

    def _overlap_add(
        self, frames: Tensor, state: VocoderState
    ) -> tuple[Tensor, Tensor]:
        batch, chunk, n_fft = frames.shape
        hop = self.hop_length
        ratio = n_fft // hop
        pieces = frames.reshape(batch, chunk, ratio, hop)
        # Piece j of local frame t lands on hop slot t + j of this call.
        slots = sum(
            F.pad(pieces[:, :, j], (0, 0, j, ratio - 1 - j)) for j in range(ratio)
        )  # (B, Tc + R - 1, H)
        slots = slots.reshape(batch, (chunk + ratio - 1) * hop)
        carried = state.overlap.to(slots.dtype)
        slots = torch.cat(
            [slots[:, : n_fft - hop] + carried, slots[:, n_fft - hop :]], 1
        )
        done, overlap = slots[:, : chunk * hop], slots[:, chunk * hop :]
        # Stream position of each completed sample -> its window-square sum.
        position = (
            state.frames[:, None] * hop
            + torch.arange(chunk * hop, device=frames.device)[None, :]
        )
        position = position.clamp(max=self.inv_envelope_start.shape[0] - 1)
        return done * self.inv_envelope_start[position].to(done.dtype), overlap


def save_vocoder(
    model: Vocoder, directory: str | Path, dtype: torch.dtype = torch.float16
) -> None:
    """Write ``config.json`` and the weights (``dtype``, fp16 by default)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().to("cpu", dtype) for k, v in model.state_dict().items()}
    (directory / CONFIG_FILE).write_text(json.dumps(model.config.to_dict(), indent=2))
    torch.save(weights, directory / WEIGHTS_FILE)


def load_vocoder(directory: str | Path, device: torch.device | str = "cpu") -> Vocoder:
    """Rebuild a vocoder from ``save_vocoder``'s folder, in float32, eval mode."""
    directory = Path(directory)
    config = VocoderConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text()))
    model = Vocoder(config)
    weights = torch.load(
        directory / WEIGHTS_FILE, map_location="cpu", weights_only=True
    )
    model.load_state_dict({k: v.float() for k, v in weights.items()})
    return model.to(device).eval()
