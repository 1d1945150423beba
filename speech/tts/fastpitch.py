"""Incremental FastPitch: text encoder, prosody predictors, chunked decoder.

Letters: B utterances, N symbols, T mel frames, D model width, M mel bins,
P relative distances.

* Encoder: symbol embedding + pre-norm FFT blocks over the whole symbol
  sequence. Attention is the core's relative-position attention with one
  chunk covering the whole (padded) sequence, so encoder and decoder share one
  positional scheme and no absolute position table limits the input length;
  padding is masked through ``key_valid``. FF: conv(k) -> ReLU -> conv(1),
  centred ("same") on padding-zeroed inputs.
* Predictors (duration, pitch, energy): 2 x [conv k, ReLU, LayerNorm,
  dropout] + linear, on the encoder output. Durations are predicted as
  ``log(1 + frames)``; pitch as normalised log-f0 per symbol (see
  ``speech.tts.pitch``); energy as normalised log energy per symbol. Pitch and
  energy are embedded by a 1 -> D conv(k) each and added to the encoder output.
* Length regulation repeats each symbol's vector by its duration: the
  ground-truth durations of the learned alignment in training, the predicted
  ones (scaled by ``1 / pace``) in inference.
* Decoder: ``speech.tts.decoder.IncrementalDecoder`` (chunked, streamable).

Controls at inference: ``pace`` divides durations (2.0 speaks twice as
fast); ``pitch_shift`` is in semitones (added to log-f0, i.e. to normalised
pitch as ``s ln2 / 12 / pitch_std``); volume is a gain on the waveform and
lives in the synthesizer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech.core import RelPositionAttention, padding_mask, relative_position_table
from speech.formats import atomic_output, write_text_atomic
from speech.tts.config import FastPitchConfig
from speech.tts.decoder import IncrementalDecoder
from speech.tts.pitch import semitones_to_normalized

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "FastPitch",
    "FastPitchOutput",
    "ProsodyOutput",
    "load_tts",
    "regulate_length",
    "save_tts",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "fastpitch.pt"


class FFTBlock(nn.Module):
    """Encoder block: relative self-attention + conv FF, pre-norm residuals."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        kernel_size: int,
        dropout: float,
        attention_dropout: float,
    ) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = RelPositionAttention(dim, num_heads, attention_dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.expand = nn.Conv1d(dim, ffn_dim, kernel_size, padding=kernel_size // 2)
        self.project = nn.Conv1d(ffn_dim, dim, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, valid: Tensor, positions: Tensor) -> Tensor:
        """x (B, N, D), valid (B, N) bool, positions (2N - 1, D) -> (B, N, D)."""
        normed = self.attention_norm(x)
        keys, values = self.attention.project_keys_values(normed)
        queries = self.attention.project_queries(normed)
        hidden = x + self.dropout(
            self.attention.attend(queries, keys, values, valid, positions)
        )
        conv_in = (self.ffn_norm(hidden) * valid[..., None]).transpose(1, 2)
        ffn = self.project(self.dropout(F.relu(self.expand(conv_in))))
        return (hidden + self.dropout(ffn.transpose(1, 2))) * valid[..., None]


class TextEncoder(nn.Module):
    def __init__(self, config: FastPitchConfig) -> None:
        super().__init__()
        c = config
        self.embedding = nn.Embedding(c.num_symbols, c.model_dim, padding_idx=0)
        self.blocks = nn.ModuleList(
            FFTBlock(
                c.model_dim,
                c.num_heads,
                c.ffn_dim,
                c.ffn_kernel_size,
                c.dropout,
                c.attention_dropout,
            )
            for _ in range(c.encoder_layers)
        )
        self.norm = nn.LayerNorm(c.model_dim)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, N), lengths (B,) -> (B, N, D), zeros on padding."""
        valid = padding_mask(lengths, ids.shape[1])
        x = self.embedding(ids)
        positions = relative_position_table(
            ids.shape[1], 0, 0, x.shape[-1], device=ids.device
        )
        for block in self.blocks:
            x = block(x, valid, positions)
        return self.norm(x) * valid[..., None]


class TemporalPredictor(nn.Module):
    """2 x [conv k -> ReLU -> LayerNorm -> dropout] -> linear, per symbol."""

    def __init__(self, dim: int, hidden: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv1d(dim, hidden, kernel_size, padding=kernel_size // 2),
                nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2),
            ]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(hidden), nn.LayerNorm(hidden)])
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        """x (B, N, D), valid (B, N) -> (B, N), zeros on padding."""
        mask = valid[..., None].to(x.dtype)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.relu(conv((x * mask).transpose(1, 2))).transpose(1, 2)
            x = self.dropout(norm(x))
        return self.out(x * mask).squeeze(-1) * valid


def regulate_length(x: Tensor, durations: Tensor) -> tuple[Tensor, Tensor]:
    """Repeat every symbol vector by its duration.

    Args:
        x: (B, N, D) symbol vectors.
        durations: (B, N) non-negative integer frames per symbol.

    Returns:
        (B, T, D) frames with T = max total duration (zeros past each total),
        and (B,) totals.

    Example:
        >>> regulate_length(torch.tensor([[[1.], [2.]]]), torch.tensor([[2, 1]]))[0]
        tensor([[[1.],
                 [1.],
                 [2.]]])
    """
    ends = durations.long().cumsum(-1)  # (B, N)
    lengths = ends[:, -1]
    frames = max(int(lengths.max()), 1)
    t = torch.arange(frames, device=x.device)[None, :].expand(x.shape[0], frames)
    index = torch.searchsorted(ends, t.contiguous(), right=True).clamp(
        max=x.shape[1] - 1
    )
    out = x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))
    return out * (t < lengths[:, None])[..., None].to(out.dtype), lengths


class FastPitchOutput(NamedTuple):
    mel: Tensor  # (B, T, M) predicted log-mel, zeros past mel_lengths
    mel_lengths: Tensor  # (B,)
    log_durations: Tensor  # (B, N) predicted log(1 + frames)
    pitch: Tensor  # (B, N) predicted normalised pitch
    energy: Tensor  # (B, N) predicted normalised energy


class ProsodyOutput(NamedTuple):
    frames: Tensor  # (B, T, D) decoder input
    frame_lengths: Tensor  # (B,)
    durations: Tensor  # (B, N) frames per symbol
    pitch: Tensor  # (B, N) normalised pitch used (after the shift)
    energy: Tensor  # (B, N)


class FastPitch(nn.Module):
    """Incremental FastPitch acoustic model (symbol ids -> log-mel frames)."""

    def __init__(self, config: FastPitchConfig) -> None:
        super().__init__()
        c = config
        self.config = config
        self.encoder = TextEncoder(c)
        predictor = (
            c.model_dim,
            c.predictor_dim,
            c.predictor_kernel_size,
            c.predictor_dropout,
        )
        self.duration_predictor = TemporalPredictor(*predictor)
        self.pitch_predictor = TemporalPredictor(*predictor)
        self.energy_predictor = TemporalPredictor(*predictor)
        k = c.prosody_embedding_kernel_size
        self.pitch_embedding = nn.Conv1d(1, c.model_dim, k, padding=k // 2)
        self.energy_embedding = nn.Conv1d(1, c.model_dim, k, padding=k // 2)
        self.decoder = IncrementalDecoder(
            c.model_dim,
            c.decoder_layers,
            c.num_heads,
            c.ffn_dim,
            c.ffn_kernel_size,
            c.mel.n_mels,
            c.chunk_size,
            c.past_context,
            c.dropout,
            c.attention_dropout,
        )

    def embed(self, ids: Tensor) -> Tensor:
        """(B, N) -> (B, N, D) symbol embeddings (also the aligner's input)."""
        return self.encoder.embedding(ids)

    def _add_prosody(
        self, hidden: Tensor, pitch: Tensor, energy: Tensor, valid: Tensor
    ) -> Tensor:
        mask = valid[..., None].to(hidden.dtype)
        prosody = self.pitch_embedding(pitch[:, None, :]) + self.energy_embedding(
            energy[:, None, :]
        )  # (B, D, N)
        return hidden + prosody.transpose(1, 2) * mask

    def teacher_forced(
        self,
        ids: Tensor,
        lengths: Tensor,
        durations: Tensor,
        pitch: Tensor,
        energy: Tensor,
    ) -> tuple[ProsodyOutput, FastPitchOutput]:
        """Encoder and predictors with target prosody: the decoder's input.

        Returns:
            ``ProsodyOutput`` built from the targets, and a ``FastPitchOutput``
            holding the predictions (its mel fields are empty).
        """
        valid = padding_mask(lengths, ids.shape[1])
        hidden = self.encoder(ids, lengths)
        log_durations = self.duration_predictor(hidden, valid)
        pitch_pred = self.pitch_predictor(hidden, valid)
        energy_pred = self.energy_predictor(hidden, valid)
        hidden = self._add_prosody(
            hidden, pitch.to(hidden.dtype), energy.to(hidden.dtype), valid
        )
        durations = durations.long() * valid
        frames, frame_lengths = regulate_length(hidden, durations)
        empty = hidden.new_zeros(0)
        return (
            ProsodyOutput(frames, frame_lengths, durations, pitch, energy),
            FastPitchOutput(
                empty, frame_lengths, log_durations, pitch_pred, energy_pred
            ),
        )

    def forward(
        self,
        ids: Tensor,
        lengths: Tensor,
        durations: Tensor,
        pitch: Tensor,
        energy: Tensor,
        chunk_size: int | None = None,
        past_context: int | None = None,
    ) -> FastPitchOutput:
        """Teacher-forced pass (training): targets drive the regulation.

        Args:
            ids: (B, N) symbol ids, 0 = padding.
            lengths: (B,) symbols per utterance.
            durations: (B, N) frames per symbol (from the hard alignment).
            pitch, energy: (B, N) normalised per-symbol targets.
            chunk_size, past_context: decoder geometry override.

        Returns:
            ``FastPitchOutput``; the mel is the chunk-masked decode.
        """
        inputs, predicted = self.teacher_forced(ids, lengths, durations, pitch, energy)
        mel = self.decoder(
            inputs.frames, inputs.frame_lengths, chunk_size, past_context
        )
        return predicted._replace(mel=mel)

    def prosody(
        self,
        ids: Tensor,
        lengths: Tensor | None = None,
        pace: float = 1.0,
        pitch_shift: float = 0.0,
    ) -> ProsodyOutput:
        """Everything before the decoder, at inference: the decoder's input.

        Args:
            ids: (B, N) symbol ids; lengths: (B,) (default: all N).
            pace: speed factor, durations are divided by it (> 0).
            pitch_shift: semitones added to the predicted pitch.

        Returns:
            ``ProsodyOutput`` (frames (B, T, D) to decode, chunk by chunk or
            at once). Every utterance gets at least one frame.
        """
        if pace <= 0:
            raise ValueError(f"pace must be positive, got {pace}")
        if lengths is None:
            lengths = torch.full((ids.shape[0],), ids.shape[1], device=ids.device)
        valid = padding_mask(lengths, ids.shape[1])
        hidden = self.encoder(ids, lengths)
        log_durations = self.duration_predictor(hidden, valid)
        durations = torch.round((torch.exp(log_durations) - 1.0) / pace).clamp(min=0)
        durations = durations.long() * valid
        empty = durations.sum(-1) == 0
        durations[:, 0] += empty.long()  # never an empty utterance
        shift = semitones_to_normalized(pitch_shift, self.config.pitch_std)
        pitch = (self.pitch_predictor(hidden, valid) + shift) * valid
        energy = self.energy_predictor(hidden, valid)
        hidden = self._add_prosody(hidden, pitch, energy, valid)
        frames, frame_lengths = regulate_length(hidden, durations)
        return ProsodyOutput(frames, frame_lengths, durations, pitch, energy)

    @torch.no_grad()
    def infer(
        self,
        ids: Tensor,
        lengths: Tensor | None = None,
        pace: float = 1.0,
        pitch_shift: float = 0.0,
        full_context: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Symbol ids -> log-mel, all at once.

        Args:
            ids: (B, N); lengths: (B,) or None.
            full_context: decode without the chunk mask (differs from what
                streaming gives; for comparison only).

        Returns:
            (B, T, M) log-mel (the chunk-masked decode, equal to streaming it
            chunk by chunk) and (B,) frame counts.
        """
        prosody = self.prosody(ids, lengths, pace, pitch_shift)
        if full_context:
            mel = self.decoder.forward_full_context(
                prosody.frames, prosody.frame_lengths
            )
        else:
            mel = self.decoder(prosody.frames, prosody.frame_lengths)
        return mel, prosody.frame_lengths


def save_tts(
    model: FastPitch,
    directory: str | os.PathLike[str],
    dtype: torch.dtype = torch.float16,
) -> None:
    """Write ``config.json`` and ``fastpitch.pt`` (weights in ``dtype``) to a
    directory; with them ``load_tts`` rebuilds the model (symbol table and
    pitch/energy statistics live in the config). Files are replaced atomically.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        name: tensor.detach().to("cpu", dtype)
        if tensor.is_floating_point()
        else tensor.detach().cpu()
        for name, tensor in model.state_dict().items()
    }
    with atomic_output(folder / WEIGHTS_NAME) as file:
        torch.save(state, file)
    write_text_atomic(folder / CONFIG_NAME, model.config.to_json() + "\n")


def load_tts(
    directory: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> FastPitch:
    """Rebuild a saved model (in eval mode) from its directory alone."""
    folder = Path(directory)
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: no FastPitch config")
    config = FastPitchConfig.from_json(config_path.read_text(encoding="utf-8"))
    model = FastPitch(config)
    state = torch.load(folder / WEIGHTS_NAME, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device=device, dtype=dtype).eval()
