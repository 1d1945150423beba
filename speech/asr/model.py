"""The ChunkFormer CTC recognizer: global CMVN, encoder, CTC head.

A model folder holds ``config.json``, ``model.pt`` (state dict, fp16 or
fp32) and ``tokenizer.model``; ``load_model(path)`` rebuilds everything from
that folder alone. A state dict larger than ``MAX_SHARD_BYTES`` is written
as shards ``model-00001-of-00003.pt`` ... instead of ``model.pt``, so that
no file of a model kept in git goes over 16 MB. Letters: B batch, T input
frames, T' encoder frames, M mel bins, V vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from speech.asr.config import AsrConfig
from speech.asr.encoder import ChunkFormerEncoder, EncoderState
from speech.asr.weights import DEFAULT_MODEL_DIR, SHARD, shard_names, weight_files
from speech.formats import atomic_output

if TYPE_CHECKING:
    from speech.asr.tokenizer import Tokenizer

__all__ = [
    "AsrModel",
    "DEFAULT_MODEL_DIR",
    "MAX_SHARD_BYTES",
    "load_model",
    "load_state",
    "save_model",
]

# tensor bytes per weights file; with pickling overhead a file stays < 16 MB
MAX_SHARD_BYTES = 15 * 2**20


class AsrModel(nn.Module):
    def __init__(self, config: AsrConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.num_mel_bins))
        self.register_buffer("feature_istd", torch.ones(config.num_mel_bins))
        self.encoder = ChunkFormerEncoder(config)
        self.ctc = nn.Linear(config.d_model, config.vocab_size)
        self.tokenizer: Tokenizer | None = None

    def normalize(self, features: Tensor) -> Tensor:
        """Global CMVN: (..., M) -> (..., M)."""
        return (features - self.feature_mean) * self.feature_istd

    def forward(
        self,
        features: Tensor,
        lengths: Tensor,
        chunk_size: int,
        left_context: int,
        right_context: int,
        max_subsampling_frames: int = 0,
    ) -> tuple[Tensor, Tensor]:
        """Masked-batching CTC log-probabilities.

        Args:
            features: (B, T, M) raw log-mel features (CMVN applied here).
            lengths: (B,) valid frames.

        Returns:
            (B, T', V) log-probabilities and (B,) encoder lengths.
        """
        encoded, out_lengths = self.encoder(
            self.normalize(features),
            lengths,
            chunk_size,
            left_context,
            right_context,
            max_subsampling_frames,
        )
        return self.ctc(encoded).float().log_softmax(-1), out_lengths

    def forward_list(
        self,
        features: list[Tensor],
        chunk_size: int,
        left_context: int,
        right_context: int,
        max_subsampling_frames: int = 1024,
    ) -> list[Tensor]:
        """Masked batching of utterances given one by one: no padding at all.

        Each (T_b, M) input is subsampled on its own (in windows of at most
        ``max_subsampling_frames`` encoder frames), the encoder frames of all
        inputs are concatenated and every layer runs their chunks as one
        batch.

        Returns:
            one (T'_b, V) log-probability tensor per input.
        """
        encoder = self.encoder
        flat, lengths = [], []
        for feats in features:
            x, n = encoder.subsample(
                self.normalize(feats)[None],
                torch.tensor([feats.shape[0]]),
                max_subsampling_frames,
            )
            flat.append(x[0])
            lengths.append(int(n[0]))
        x = encoder.forward_flat(
            torch.cat(flat),
            torch.tensor(lengths),
            chunk_size,
            left_context,
            right_context,
        )
        log_probs = self.ctc(x).float().log_softmax(-1)
        return list(log_probs.split(lengths))

    def init_state(
        self,
        batch: int,
        left_context: int | None = None,
        device: torch.device | None = None,
    ) -> EncoderState:
        left = (
            self.config.streaming.left_context if left_context is None else left_context
        )
        dtype = self.ctc.weight.dtype
        return self.encoder.init_state(
            batch, left, device or self.ctc.weight.device, dtype
        )

    def forward_chunk(
        self, features: Tensor, state: EncoderState, num_valid: Tensor | None = None
    ) -> tuple[Tensor, EncoderState]:
        """Streaming step: (B, 8C + 7, M) raw features -> (B, C, V)
        log-probabilities and the new state (see ``ChunkFormerEncoder``)."""
        encoded, state = self.encoder.forward_chunk(
            self.normalize(features), state, num_valid
        )
        return self.ctc(encoded).float().log_softmax(-1), state


def _split_state(state: dict[str, Tensor], max_bytes: int) -> list[dict[str, Tensor]]:
    """Consecutive groups of tensors of at most ``max_bytes`` each."""
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes > max_bytes:
            raise ValueError(
                f"tensor {name} alone has {nbytes} bytes, more than the "
                f"{max_bytes} a weights file may hold"
            )
        if size + nbytes > max_bytes and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    return shards


def save_state(
    state: dict[str, Tensor], path: str | Path, max_shard_bytes: int = MAX_SHARD_BYTES
) -> Path:
    """Write a state dict as a model folder's weights: ``model.pt``, or
    ``model-0000i-of-0000n.pt`` shards of at most ``max_shard_bytes`` tensor
    bytes; weight files of an earlier save that this one does not use are
    removed afterwards, and each file is written to a temporary and renamed.
    ``load_state`` reads them back. Returns the folder."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    shards = _split_state(state, max_shard_bytes)
    old_single, old_shards = weight_files(out)
    if len(shards) == 1:
        written = [out / "model.pt"]
    else:
        written = shard_names(out, len(shards))
    for target, shard in zip(written, shards, strict=True):
        with atomic_output(target) as file:
            torch.save(shard, file)
    for stale in [old_single, *old_shards]:
        if stale is not None and stale not in written:
            stale.unlink(missing_ok=True)
    return out


def save_model(
    model: AsrModel,
    path: str | Path,
    half: bool = True,
    tokenizer_file: str | Path | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> None:
    """Write config.json, the weights and tokenizer.model into ``path``.

    The weights go to ``model.pt``, or to ``model-0000i-of-0000n.pt`` shards
    of at most ``max_shard_bytes`` tensor bytes when they are larger; weight
    files of an earlier save that the new one does not use are removed
    afterwards. Every file is written to a temporary and renamed, so a crash
    leaves no half file."""
    state = {
        k: (
            v.half()
            if half and v.is_floating_point() and not k.startswith("feature_")
            else v
        )
        for k, v in model.state_dict().items()
    }
    out = save_state(state, path, max_shard_bytes)
    config_text = json.dumps(model.config.to_dict(), indent=2) + "\n"
    with atomic_output(out / "config.json") as file:
        file.write(config_text.encode())
    source = tokenizer_file or (model.tokenizer.path if model.tokenizer else None)
    if (
        source is not None
        and Path(source).resolve() != (out / "tokenizer.model").resolve()
    ):
        data = Path(source).read_bytes()
        with atomic_output(out / "tokenizer.model") as file:
            file.write(data)


def load_state(folder: str | Path) -> dict[str, Tensor]:
    """The float32 weights of a model folder: ``model.pt`` or all its shards.

    A folder with both, with shards of different counts or with a shard
    missing raises ``ValueError``; one with neither ``FileNotFoundError``."""
    folder = Path(folder)
    single, shards = weight_files(folder)
    if single is None and not shards:
        raise FileNotFoundError(
            f"{folder}: no weights (model.pt or model-00001-of-0000N.pt shards)"
        )
    if single is not None and shards:
        raise ValueError(
            f"{folder}: holds both model.pt and model-*-of-*.pt shards; "
            "remove the stale ones"
        )
    if shards:
        counts = {int(SHARD.fullmatch(p.name)[2]) for p in shards}  # type: ignore[index]
        if len(counts) != 1:
            raise ValueError(f"{folder}: shards of different sets ({sorted(counts)})")
        expected = shard_names(folder, counts.pop())
        missing = [p.name for p in expected if p not in shards]
        if missing:
            raise ValueError(f"{folder}: shard missing: {', '.join(missing)}")
    state: dict[str, Tensor] = {}
    for file in [single] if single is not None else shards:
        part = torch.load(file, map_location="cpu", weights_only=True)
        state.update({k: v.float() for k, v in part.items()})
    return state


def load_model(
    path: str | Path | None = None, device: str | torch.device = "cpu"
) -> AsrModel:
    """Rebuild a recognizer (config, weights, CMVN, tokenizer) from a folder;
    ``None`` loads the default English model shipped with the package."""
    folder = Path(path) if path is not None else DEFAULT_MODEL_DIR
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder}: not a model folder (no config.json)")
    config = AsrConfig.load(config_file)
    model = AsrModel(config)
    model.load_state_dict(load_state(folder))
    tokenizer_file = folder / "tokenizer.model"
    if tokenizer_file.is_file():
        from speech.asr.tokenizer import Tokenizer

        model.tokenizer = Tokenizer.load(tokenizer_file)
    return model.to(device).eval()
