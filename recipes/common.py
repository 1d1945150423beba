"""Pieces every training recipe needs: audio reading that works without
soundfile (the GPU machine has none), exact-resume checkpoints, distributed
set-up and a wall-clock budget."""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "Distributed",
    "Utterance",
    "WallClock",
    "capture_rng",
    "load_checkpoint",
    "read_manifest",
    "read_pcm16",
    "read_wav",
    "restore_rng",
    "save_checkpoint",
]


@dataclass(frozen=True)
class Utterance:
    audio: str  # absolute path
    duration: float  # seconds
    text: str
    speaker: str


def read_manifest(path: str | Path) -> list[Utterance]:
    """A JSONL manifest (``audio`` relative to the manifest's folder or
    absolute, ``duration``, ``text``, ``speaker``) or a LibriSpeech-style
    folder (``speaker/chapter/*.trans.txt`` beside ``.flac`` or ``.wav``)."""
    path = Path(path)
    if path.is_dir():
        return _read_librispeech(path)
    items = []
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                audio = Path(row["audio"])
                if not audio.is_absolute():
                    audio = path.parent / audio
                items.append(
                    Utterance(
                        str(audio),
                        float(row.get("duration", 0.0)),
                        row["text"],
                        str(row.get("speaker", "unknown")),
                    )
                )
            except (ValueError, KeyError) as error:
                raise ValueError(
                    f"{path}:{number}: bad manifest line ({error})"
                ) from None
    return items


def _read_librispeech(root: Path) -> list[Utterance]:
    items = []
    for transcript in sorted(root.rglob("*.trans.txt")):
        for line in transcript.read_text().splitlines():
            if not line.strip():
                continue
            utt_id, _, text = line.partition(" ")
            for ext in (".flac", ".wav"):
                audio = transcript.parent / f"{utt_id}{ext}"
                if audio.exists():
                    break
            speaker = utt_id.split("-")[0]
            items.append(Utterance(str(audio), 0.0, text.strip(), speaker))
    return items


def _wav_pcm16(path: str) -> tuple[np.ndarray, int] | None:
    """The (frames, channels) int16 samples and the rate of a 16-bit PCM
    WAV, read by the standard library; None for any other file."""
    try:
        with wave.open(path, "rb") as w:
            if w.getsampwidth() != 2:
                return None
            rate, channels = w.getframerate(), w.getnchannels()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    except (wave.Error, EOFError):
        return None
    return data.reshape(-1, channels), rate


def _float_mono(
    path: str, pcm: tuple[np.ndarray, int] | None, sample_rate: int
) -> np.ndarray:
    """``read_wav``'s samples, from ``_wav_pcm16(path)`` when it read the
    file, else through soundfile."""
    if pcm is not None:
        data, rate = pcm
        samples = data.mean(axis=1).astype(np.float32) / 32768.0
    else:
        import soundfile

        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)
    if rate != sample_rate:
        import torchaudio.functional as AF

        samples = AF.resample(torch.from_numpy(samples), rate, sample_rate).numpy()
    return samples


def read_wav(path: str, sample_rate: int) -> np.ndarray:
    """Float32 mono samples at ``sample_rate``: 16-bit PCM WAV through the
    standard library, anything else through soundfile when it is installed."""
    return _float_mono(path, _wav_pcm16(path), sample_rate)


def read_pcm16(path: str, sample_rate: int) -> np.ndarray:
    """Mono int16 samples at ``sample_rate``, as the ASR trainer keeps them
    in memory. A 16-bit mono WAV at that rate (what the corpus builder
    writes) is taken as it is, without the float round trip of
    ``read_wav`` (that round trip, with one loading task per file, made the
    trainer's start on a 42-hour manifest 41 s instead of 14 s on two CPU
    cores). Anything else is ``read_wav``'s samples rounded to 16 bits; both
    ways give the same samples for the same file."""
    pcm = _wav_pcm16(path)
    if pcm is not None and pcm[0].shape[1] == 1 and pcm[1] == sample_rate:
        return pcm[0][:, 0].astype(np.int16)
    samples = _float_mono(path, pcm, sample_rate)
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def capture_rng() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write atomically: a kill mid-write leaves the previous checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


class Distributed:
    """Rank, world size and device from torchrun's environment (or one
    process when not under torchrun)."""

    def __init__(self, device: str | None = None) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda"):
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device(device)
        if self.world_size > 1:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on one (e.g. time is up)."""
        if self.world_size == 1:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value)
        return bool(value.item() > 0)

    def check_in_sync(self, module: torch.nn.Module) -> None:
        """Raise ``RuntimeError`` unless every rank holds bit-identical
        parameters (DDP keeps them so; a rank that drifted would make the
        saved rank-0 model one that saw only its own share of the data)."""
        if self.world_size == 1:
            return
        values = [p.detach().double().flatten() for p in module.parameters()]
        flat = torch.cat(values)
        positions = torch.arange(1, flat.numel() + 1, dtype=torch.float64)
        digest = torch.stack(
            [flat.sum(), (flat * flat).sum(), (flat * positions.to(flat)).sum()]
        ).to(self.device)
        digests = [torch.empty_like(digest) for _ in range(self.world_size)]
        dist.all_gather(digests, digest)
        drifted = [r for r, d in enumerate(digests) if not torch.equal(d, digests[0])]
        if drifted:
            raise RuntimeError(
                f"ranks {drifted} hold other parameters than rank 0: "
                "data-parallel training is out of sync"
            )

    def close(self) -> None:
        if self.world_size > 1:
            dist.destroy_process_group()


class WallClock:
    """A budget in minutes (0 = none) for runs that must stop cleanly."""

    def __init__(self, minutes: float) -> None:
        self.start = time.monotonic()
        self.limit = minutes * 60.0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def up(self) -> bool:
        return self.limit > 0 and self.elapsed() >= self.limit
