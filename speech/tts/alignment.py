"""Learned text-to-mel alignment (One TTS Alignment, Badlani et al. 2022).

Letters: B utterances, T mel frames, N symbols, A aligner width, M mel bins.

The aligner embeds symbols (the synthesizer's own symbol embeddings) and mel
frames with two small conv stacks, scores every (frame, symbol) pair by
negative squared L2 distance, adds a beta-binomial log prior that favours the
diagonal, and normalises over symbols: a soft alignment whose rows are
distributions over symbols. Training uses

* the forward-sum loss: CTC with one target per symbol in order, so it sums
  the probability of every monotonic path that visits each symbol;
* monotonic alignment search (Viterbi) on the soft alignment, giving a hard
  alignment and integer durations (every symbol gets at least one frame);
* the binarisation loss, ``-mean log soft[hard]``, which pulls the soft
  alignment towards the hard one once the soft one is sensible (switch it on
  after a warm-up).

Nothing here knows about optimisers or steps; the recipe combines the losses.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech.core import padding_mask

__all__ = [
    "Aligner",
    "AlignerOutput",
    "beta_binomial_log_prior",
    "binarization_loss",
    "forward_sum_loss",
    "monotonic_alignment_search",
]


# Masked scores: finite, because CTC's gradient turns -inf inputs into NaN.
_MASKED = -1e4


def beta_binomial_log_prior(
    text_lengths: Tensor,
    mel_lengths: Tensor,
    num_symbols: int | None = None,
    num_frames: int | None = None,
    scaling: float = 1.0,
) -> Tensor:
    """Log beta-binomial prior of symbol n at frame t: near-diagonal alignments.

    For an utterance of N symbols and T frames, frame t (1-based) draws its
    symbol from BetaBinomial(N - 1, alpha = s t, beta = s (T - t + 1)).

    Args:
        text_lengths: (B,) symbols per utterance.
        mel_lengths: (B,) frames per utterance.
        num_symbols, num_frames: padded sizes (default: the maxima).
        scaling: s; smaller values give a wider prior.

    Returns:
        (B, T, N) log probabilities; 0 on padding (frames or symbols past the
        lengths), so it never masks anything by itself.

    Example (one utterance, 2 symbols, 2 frames): frame 1 prefers symbol 0.
        >>> beta_binomial_log_prior(torch.tensor([2]), torch.tensor([2]))[0].exp()
        tensor([[0.6667, 0.3333],
                [0.3333, 0.6667]])
    """
    n_max = int(text_lengths.max()) if num_symbols is None else num_symbols
    t_max = int(mel_lengths.max()) if num_frames is None else num_frames
    device = text_lengths.device
    n = (text_lengths.double() - 1.0)[:, None, None]  # (B, 1, 1)
    length = mel_lengths.double()[:, None, None]
    k = torch.arange(n_max, device=device, dtype=torch.float64)[None, None, :]
    t = torch.arange(1, t_max + 1, device=device, dtype=torch.float64)[None, :, None]
    alpha = scaling * t
    beta = (scaling * (length - t + 1.0)).clamp(min=1e-3)
    valid = (k <= n) & (t <= length)
    k_safe = torch.minimum(k, n.clamp(min=0.0))

    def log_beta(a: Tensor, b: Tensor) -> Tensor:
        return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)

    log_pmf = (
        torch.lgamma(n + 1.0)
        - torch.lgamma(k_safe + 1.0)
        - torch.lgamma(n - k_safe + 1.0)
        + log_beta(k_safe + alpha, n - k_safe + beta)
        - log_beta(alpha, beta)
    )
    return torch.where(valid, log_pmf, 0.0).float()


class AlignerOutput(NamedTuple):
    soft: Tensor  # (B, T, N) rows sum to 1 over valid symbols
    log_prob: Tensor  # (B, T, N) log scores with the prior, about -1e4 on pads


class Aligner(nn.Module):
    """Soft alignment of mel frames to symbols from L2 distances of embeddings."""

    def __init__(
        self,
        text_dim: int,
        mel_dim: int = 80,
        dim: int = 80,
        temperature: float = 0.0005,
        prior_scaling: float = 1.0,
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.prior_scaling = prior_scaling
        self.text_encoder = nn.Sequential(
            nn.Conv1d(text_dim, 2 * text_dim, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(2 * text_dim, dim, 1),
        )
        self.mel_encoder = nn.Sequential(
            nn.Conv1d(mel_dim, 2 * mel_dim, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(2 * mel_dim, mel_dim, 1),
            nn.ReLU(),
            nn.Conv1d(mel_dim, dim, 1),
        )

    def forward(
        self,
        text_embedding: Tensor,
        text_lengths: Tensor,
        mel: Tensor,
        mel_lengths: Tensor,
    ) -> AlignerOutput:
        """Soft alignment of a padded batch.

        Args:
            text_embedding: (B, N, D) symbol embeddings.
            text_lengths: (B,) symbols per utterance.
            mel: (B, T, M) log-mel frames.
            mel_lengths: (B,) frames per utterance.

        Returns:
            ``AlignerOutput`` with (B, T, N) soft alignment and log scores.
        """
        symbol_valid = padding_mask(text_lengths, text_embedding.shape[1])  # (B, N)
        frame_valid = padding_mask(mel_lengths, mel.shape[1])  # (B, T)
        text = text_embedding * symbol_valid[..., None].to(text_embedding.dtype)
        keys = self.text_encoder(text.transpose(1, 2))  # (B, A, N)
        queries = self.mel_encoder(
            (mel * frame_valid[..., None].to(mel.dtype)).transpose(1, 2)
        )  # (B, A, T)
        with torch.autocast(device_type=mel.device.type, enabled=False):
            keys, queries = keys.float(), queries.float()
            distance = (
                queries.square().sum(1)[:, :, None]
                + keys.square().sum(1)[:, None, :]
                - 2.0 * torch.bmm(queries.transpose(1, 2), keys)
            )  # (B, T, N)
            scores = -self.temperature * distance
            scores = scores.masked_fill(~symbol_valid[:, None, :], _MASKED)
            log_prob = F.log_softmax(scores, dim=-1) + beta_binomial_log_prior(
                text_lengths,
                mel_lengths,
                keys.shape[2],
                queries.shape[2],
                self.prior_scaling,
            )
            soft = torch.softmax(log_prob, dim=-1)
            soft = soft * frame_valid[..., None].float()
        return AlignerOutput(soft=soft, log_prob=log_prob)


def forward_sum_loss(
    log_prob: Tensor,
    text_lengths: Tensor,
    mel_lengths: Tensor,
    blank_log_prob: float = -1.0,
) -> Tensor:
    """CTC loss of emitting symbols 1..N in order: all monotonic alignments.

    Args:
        log_prob: (B, T, N) alignment log scores (padded symbols are masked
            here from ``text_lengths``).
        text_lengths, mel_lengths: (B,).
        blank_log_prob: score of the CTC blank prepended to every frame.

    Returns:
        () the CTC loss averaged over utterances (each divided by its N).
    """
    batch, _, symbols = log_prob.shape
    with torch.autocast(device_type=log_prob.device.type, enabled=False):
        valid = padding_mask(text_lengths, symbols)[:, None, :]
        scores = log_prob.float().clamp(min=_MASKED).masked_fill(~valid, _MASKED)
        scores = F.pad(scores, (1, 0), value=blank_log_prob)  # (B, T, N + 1)
        scores = F.log_softmax(scores, dim=-1)
        targets = torch.arange(1, symbols + 1, device=log_prob.device)
        targets = targets[None, :].expand(batch, symbols)
        return F.ctc_loss(
            scores.transpose(0, 1),
            targets,
            mel_lengths,
            text_lengths,
            blank=0,
            reduction="mean",
            zero_infinity=True,
        )


def monotonic_alignment_search(
    log_prob: Tensor, text_lengths: Tensor, mel_lengths: Tensor
) -> Tensor:
    """Most likely monotonic hard alignment (Viterbi), every symbol >= 1 frame.

    The path starts at symbol 0 on frame 0, ends at symbol N - 1 on frame
    T - 1 and moves by 0 or 1 symbol per frame. Runs in numpy on the CPU,
    vectorised over the batch (one step per frame): cheap next to a training
    step, and no custom kernel.

    Args:
        log_prob: (B, T, N) log scores (log of the soft alignment works well).
        text_lengths, mel_lengths: (B,); needs ``mel_lengths >= text_lengths``.

    Returns:
        (B, T, N) float 0/1 on ``log_prob``'s device; rows of padded frames
        are all zero. ``.sum(1)`` gives the durations.

    Example:
        >>> lp = torch.log(torch.tensor([[[.9, .1], [.6, .4], [.2, .8]]]))
        >>> monotonic_alignment_search(lp, torch.tensor([2]), torch.tensor([3]))[0]
        tensor([[1., 0.],
                [1., 0.],
                [0., 1.]])
    """
    batch, frames, symbols = log_prob.shape
    valid = padding_mask(text_lengths, symbols)[:, None, :]
    scores = log_prob.detach().float().nan_to_num(nan=-1e9, neginf=-1e9)
    scores = scores.masked_fill(~valid, -1e9).transpose(0, 1).contiguous()
    scores = scores.cpu().numpy()  # (T, B, N)
    n_len = text_lengths.cpu().numpy().astype(np.int64)
    t_len = mel_lengths.cpu().numpy().astype(np.int64)

    # value[:, n + 1] is the best score of a path at symbol n; column 0 is a
    # -inf sentinel so "came from n - 1" is a plain shifted view.
    value = np.full((batch, symbols + 1), -np.inf)
    value[:, 1] = scores[0, :, 0]
    best = np.empty((batch, symbols))
    moved = np.zeros((frames, batch, symbols), dtype=bool)
    for t in range(1, frames):
        stay, move = value[:, 1:], value[:, :-1]
        np.greater(move, stay, out=moved[t])
        np.maximum(move, stay, out=best)
        np.add(best, scores[t], out=value[:, 1:])

    rows = np.arange(batch)
    symbol = n_len - 1
    path = np.empty((frames, batch), dtype=np.int64)
    for t in range(frames - 1, -1, -1):
        path[t] = symbol
        # Forced moves keep the path feasible: symbol n needs n earlier frames.
        step = moved[t, rows, symbol] | (symbol > t - 1)
        step &= (t < t_len) & (symbol > 0) & (t > 0)
        symbol = symbol - step
    # Only the (B, T) path travels back; the one-hot is built on the device.
    path_tensor = torch.from_numpy(np.ascontiguousarray(path.T)).to(log_prob.device)
    frame_valid = padding_mask(mel_lengths.to(log_prob.device), frames)[..., None]
    return F.one_hot(path_tensor, symbols).float() * frame_valid


def binarization_loss(hard: Tensor, soft: Tensor) -> Tensor:
    """``-mean log soft`` over the cells of the hard alignment (KL to it)."""
    with torch.autocast(device_type=soft.device.type, enabled=False):
        picked = torch.log(soft.float().clamp(min=1e-12)) * hard.float()
        return -picked.sum() / hard.sum().clamp(min=1.0)
