"""Configuration of the Incremental FastPitch synthesizer.

One frozen dataclass holds everything a saved voice needs besides its weights:
model dimensions, streaming geometry (chunk size and past context of the
decoder), the mel front end, the symbol table and the speaker's pitch and
energy statistics. It is written as ``config.json`` beside the weights.

Streaming geometry. The decoder works on chunks of ``chunk_size`` mel frames
(S_c); each chunk's self-attention sees itself and the ``past_context`` frames
before it (S_p; L = S_p, R = 0 in the core's terms) and the causal conv of
its feed-forward sees ``ffn_kernel_size - 1`` past frames. Defaults: S_c = 16
frames (256 ms at 16 kHz / hop 256), S_p = 48 frames (768 ms, 3 chunks). A
16-frame chunk keeps the first chunk's compute small (time to first audio);
48 past frames give every frame at least 48 frames (~0.8 s) of left context
in every layer, which covers a syllable or two of prosodic context. The
receptive field this gives is 272 frames (4.35 s; ``decoder_receptive_field``
in ``speech.tts.decoder``).

Size. d = 192, 2 heads, FF 768, 4 + 4 layers, predictors 256: 7.29 M
parameters, a 14.6 MB fp16 ``fastpitch.pt`` (the budget is 16 MB; d = 256 with
FF 1024 would be 12.3 M parameters, 24.6 MB). On 2 CPU threads the encoder
and predictors take about 6 ms for an 80-symbol sentence and one 16-frame
decoder chunk about 2 ms.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from speech.tts.audio import MelConfig

__all__ = ["FastPitchConfig"]


@dataclass(frozen=True)
class FastPitchConfig:
    # Text: the symbol table; id 0 is padding.
    symbols: tuple[str, ...] = ()
    mel: MelConfig = field(default_factory=MelConfig)

    # Transformer blocks (encoder and decoder share widths).
    model_dim: int = 192
    num_heads: int = 2
    ffn_dim: int = 768
    ffn_kernel_size: int = 3
    encoder_layers: int = 4
    decoder_layers: int = 4
    dropout: float = 0.1
    attention_dropout: float = 0.1

    # Duration, pitch and energy predictors.
    predictor_dim: int = 256
    predictor_kernel_size: int = 3
    predictor_dropout: float = 0.1
    prosody_embedding_kernel_size: int = 3

    # Streaming decoder geometry, in mel frames.
    chunk_size: int = 16
    past_context: int = 48

    # Pitch (f0) estimation and the speaker's statistics. Pitch is modelled as
    # log-f0 normalised by ``(log f0 - pitch_mean) / pitch_std`` on voiced
    # frames, 0 on unvoiced ones; energy as ``(log energy - energy_mean) /
    # energy_std``.
    f0_min: float = 60.0
    f0_max: float = 500.0
    voicing_threshold: float = 0.2
    pitch_mean: float = math.log(150.0)
    pitch_std: float = 0.2
    energy_mean: float = 0.0
    energy_std: float = 1.0

    # Learned alignment (training only; the aligner is not part of a saved
    # voice, but its geometry is part of the recipe that made it).
    aligner_dim: int = 80
    aligner_temperature: float = 0.0005
    prior_scaling: float = 1.0

    @property
    def num_symbols(self) -> int:
        return max(len(self.symbols), 1)

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    @property
    def conv_context(self) -> int:
        """Past frames the decoder's causal convolution sees (K - 1)."""
        return self.ffn_kernel_size - 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["symbols"] = list(self.symbols)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FastPitchConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown FastPitch config fields: {unknown}")
        values = dict(data)
        if "symbols" in values:
            values["symbols"] = tuple(values["symbols"])
        if isinstance(values.get("mel"), dict):
            values["mel"] = MelConfig(**values["mel"])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> FastPitchConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> FastPitchConfig:
        return replace(self, **changes)
