"""Reading, converting and writing audio with numpy, soundfile and soxr only.

This module must not import torch: the ONNX Runtime install path uses it.

Everything returned is float32 mono in [-1, 1] at the requested rate. Channels
are averaged; rates are converted with soxr at "HQ" quality, by one call for
``load_audio`` and by a ``soxr.ResampleStream`` for ``iter_audio_blocks``
(the two agree to about 1e-4; the streaming one never holds the whole file).

Unreadable input raises ``AudioError`` with a one-line message:
``missing.wav: no such file``, ``x.wav: file is empty``, ``bad.wav: not an audio
file (Format not recognised)``, ``t.wav: truncated or corrupt audio (...)``.

Truncated files. A WAV/AIFF whose header declares more audio than the file
holds (a recorder killed mid-write, a partial copy) is found from libsndfile's
header log; a compressed file that decodes to fewer frames than its header
declares, or whose decoder fails part way, is found while reading. By default
both raise ``AudioError``, because silently transcribing part of a file gives a
wrong result that looks right. Pass ``allow_truncated=True`` to read what
exists instead; a warning is logged.

Not truncation: a WAV size field of 0xFFFFFFFF ("length unknown", written by
streaming writers) is read to the end of the file; a WAV whose data size is 0
but which has audio after the header (a recorder killed before it finalised
the header) is read to the end of the file with a warning.

Not detectable: MP3 frame counts are estimates when the stream has no
Xing/VBRI header, so a short MP3 only logs a warning; an Ogg file cut at a
page boundary reports the shorter length, like a shorter recording.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Iterator
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

from speech.errors import AudioError
from speech.formats import atomic_output

__all__ = [
    "SAMPLE_RATE",
    "audio_info",
    "float_to_pcm",
    "iter_audio_blocks",
    "load_audio",
    "pcm_to_float",
    "write_wav_atomic",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # the recogniser's input rate; models carry their own copy
RESAMPLE_QUALITY = "HQ"
_READ_FRAMES = 1 << 16  # source frames per libsndfile read
_SALVAGE_FRAMES = 1 << 10  # smaller reads when recovering a truncated file
# libsndfile logs e.g. "data : 32000 (should be 15978)" for a short data chunk.
# Streaming writers (ffmpeg, sox, arecord to a pipe) put 0xFFFFFFFF or about
# 0x7FFFFFFF in the size fields; libsndfile then reads to the end of the file.
_UNKNOWN_LENGTH = 0x7FFF0000
_SHORT_CHUNK = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)

_SUBTYPE_BYTES = {"PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4,
                  "DOUBLE": 8}  # fmt: skip
# Common containers libsndfile cannot read, to name them instead of "not audio".
_UNSUPPORTED_CONTAINERS = {".m4a", ".mp4", ".aac", ".wma", ".webm", ".mkv", ".amr"}

Path = str | os.PathLike[str]


def _check_file(path: Path) -> str:
    """Fail early, with a plain message, for a path that cannot hold audio."""
    name = os.fspath(path)
    try:
        stat = os.stat(name)
    except FileNotFoundError:
        raise AudioError(f"{name}: no such file") from None
    except PermissionError:
        raise AudioError(f"{name}: permission denied") from None
    except OSError as error:
        raise AudioError(f"{name}: cannot read ({error.strerror})") from None
    if os.path.isdir(name):
        raise AudioError(f"{name}: is a directory, not an audio file")
    if stat.st_size == 0:
        raise AudioError(f"{name}: file is empty")
    if not os.access(name, os.R_OK):
        raise AudioError(f"{name}: permission denied")
    return name


class _Window(io.RawIOBase):
    """Read-only view of ``size`` bytes of a file from ``offset``, for libsndfile."""

    def __init__(self, name: str, offset: int, size: int) -> None:
        self._file = open(name, "rb")  # noqa: SIM115 (closed by close())
        self._offset, self._size, self._position = offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}
        self._position = min(max(0, base[whence] + position), self._size)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        view = memoryview(buffer).cast("B")
        size = min(len(view), self._size - self._position)
        self._file.seek(self._offset + self._position)
        count = self._file.readinto(view[:size])
        self._position += count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


def _wav_data_chunk(name: str) -> tuple[int, int] | None:
    """(offset of the samples, declared byte size) of a RIFF WAV's data chunk."""
    with open(name, "rb") as file:
        head = file.read(1 << 16)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position = 12
    while position + 8 <= len(head):
        chunk_id = head[position : position + 4]
        size = int.from_bytes(head[position + 4 : position + 8], "little")
        if chunk_id == b"data":
            return position + 8, size
        position += 8 + size + (size & 1)  # chunks are padded to even sizes
    return None


def _libsndfile_reason(error: Exception) -> str:
    reason = getattr(error, "error_string", "") or str(error)
    reason = " ".join(reason.split()).removeprefix("Error : ").rstrip(".")
    return reason or type(error).__name__


class _Source:
    """An open sound file, its declared length, and the truncation policy."""

    def __init__(self, path: Path, allow_truncated: bool) -> None:
        self.name = _check_file(path)
        self.allow_truncated = allow_truncated
        try:
            self.file = sf.SoundFile(self.name)
        except sf.LibsndfileError as error:
            reason = _libsndfile_reason(error)
            if "format not recognised" in reason.lower():
                extension = os.path.splitext(self.name)[1].lower()
                if extension in _UNSUPPORTED_CONTAINERS:
                    raise AudioError(
                        f"{self.name}: unsupported audio format {extension} "
                        "(convert it to WAV, FLAC, OGG or MP3, e.g. with ffmpeg)"
                    ) from None
                raise AudioError(f"{self.name}: not an audio file ({reason})") from None
            raise AudioError(
                f"{self.name}: truncated or corrupt audio ({reason})"
            ) from None
        except (sf.SoundFileError, OSError, RuntimeError) as error:
            reason = _libsndfile_reason(error)
            raise AudioError(f"{self.name}: cannot open audio ({reason})") from None
        self.sample_rate = int(self.file.samplerate)
        self.channels = int(self.file.channels)
        self.frames = int(self.file.frames)
        self.is_mp3 = self.file.format == "MP3"
        self._check_header()
        if self.frames == 0 and self.file.format in ("WAV", "WAVEX"):
            self._open_unfinished_wav()

    def _open_unfinished_wav(self) -> None:
        """A WAV whose data chunk says 0 bytes but is followed by audio: a
        recording whose writer never came back to fill in the length. Read
        the bytes after the chunk header to the end of the file."""
        found = _wav_data_chunk(self.name)
        if found is None or found[1] != 0:
            return
        offset = found[0]
        frame_bytes = self.channels * _SUBTYPE_BYTES.get(self.file.subtype, 0)
        if frame_bytes == 0:
            return
        frames = (os.path.getsize(self.name) - offset) // frame_bytes
        if frames <= 0:
            return
        raw = _Window(self.name, offset, frames * frame_bytes)
        subtype = self.file.subtype
        self.file.close()
        self.file = sf.SoundFile(
            raw, format="RAW", subtype=subtype, endian="LITTLE",
            samplerate=self.sample_rate, channels=self.channels, closefd=True,
        )  # fmt: skip
        self.frames = frames
        logger.warning(
            "%s: WAV header declares no audio length; reading %d frames to the end",
            *(self.name, frames),
        )

    def _check_header(self) -> None:
        try:
            log = self.file.extra_info
        except Exception:  # the log is diagnostic only
            return
        for declared, present in _SHORT_CHUNK.findall(log):
            if int(declared) >= _UNKNOWN_LENGTH:
                continue  # a streaming writer's "length unknown" placeholder
            if int(present) < int(declared):
                self._truncated(
                    f"header declares {declared} bytes of audio, file holds {present}"
                )

    def _truncated(self, detail: str) -> None:
        if not self.allow_truncated:
            self.close()
            raise AudioError(f"{self.name}: truncated or corrupt audio ({detail})")
        logger.warning(
            "%s: truncated audio (%s); reading what exists", self.name, detail
        )

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        """Yield (frames, channels) float32 blocks of ``block_frames`` (the last
        may be short) until the end of the audio.

        A decoder failure part way raises (see ``_truncated``) or, when
        allowed, ends the audio after what could be decoded.
        """
        total = 0
        pieces: list[np.ndarray] = []
        pending = 0
        while True:
            want = min(_READ_FRAMES, block_frames - pending)
            try:
                piece = self.file.read(want, dtype="float32", always_2d=True)
            except (sf.SoundFileError, RuntimeError) as error:
                self._truncated(f"{_libsndfile_reason(error)} after {total} frames")
                # Allowed: the failed read lost its frames; redo it in small steps.
                piece = self._salvage(total, want)
                if len(piece):
                    total += len(piece)
                    pieces.append(piece)
                break
            if len(piece) == 0:
                if total < self.frames and self.is_mp3:
                    logger.warning(
                        "%s: decoded %d of about %d frames; the MP3 may be cut short",
                        *(self.name, total, self.frames),
                    )
                elif total < self.frames:
                    declared = f"header declares {self.frames} frames"
                    self._truncated(f"{declared}, decoded {total}")
                break
            total += len(piece)
            pieces.append(piece)
            pending += len(piece)
            if pending >= block_frames:
                yield np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
                pieces, pending = [], 0
        if pieces:
            yield np.concatenate(pieces)
        if total == 0:
            raise AudioError(f"{self.name}: file is empty (no audio frames)")

    def _salvage(self, position: int, frames: int) -> np.ndarray:
        """Re-read up to ``frames`` from ``position`` in small steps until failure."""
        pieces = []
        try:
            self.file.seek(position)
            while frames > 0:
                piece = self.file.read(min(_SALVAGE_FRAMES, frames), "float32", True)
                if len(piece) == 0:
                    break
                pieces.append(piece)
                frames -= len(piece)
        except (sf.SoundFileError, RuntimeError):
            pass
        if not pieces:
            return np.zeros((0, self.channels), np.float32)
        return np.concatenate(pieces)

    def close(self) -> None:
        self.file.close()


def _downmix(block: np.ndarray) -> np.ndarray:
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0])
    return block.mean(axis=1, dtype=np.float32)


def load_audio(
    path: Path, sample_rate: int = SAMPLE_RATE, *, allow_truncated: bool = False
) -> np.ndarray:
    """Read a whole file as float32 mono in [-1, 1] at ``sample_rate``.

    Any format libsndfile reads (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...),
    any rate and channel count. Raises ``AudioError`` for unreadable input;
    see the module docstring for truncated files.
    """
    source = _Source(path, allow_truncated)
    try:
        mono = np.concatenate([_downmix(b) for b in source.blocks(_READ_FRAMES)])
    finally:
        source.close()
    if source.sample_rate != sample_rate:
        mono = soxr.resample(mono, source.sample_rate, sample_rate, RESAMPLE_QUALITY)
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


def iter_audio_blocks(
    path: Path,
    sample_rate: int = SAMPLE_RATE,
    block_seconds: float = 60.0,
    *,
    allow_truncated: bool = False,
) -> Iterator[np.ndarray]:
    """Read a long file block by block as float32 mono in [-1, 1] at ``sample_rate``.

    Only one block (``block_seconds`` of source audio) is in memory at a time.
    The concatenation of the blocks equals ``load_audio(path, sample_rate)`` to
    about 1e-4. Block lengths vary a little (the resampler's delay); the last
    may be short. Errors found at open time raise on the first ``next()``;
    a decoder failure part way raises after the blocks read before it.
    """
    if block_seconds <= 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds}")
    source = _Source(path, allow_truncated)
    try:
        block_frames = max(1, round(block_seconds * source.sample_rate))
        resampler = None
        if source.sample_rate != sample_rate:
            resampler = soxr.ResampleStream(
                source.sample_rate, sample_rate, 1, "float32", RESAMPLE_QUALITY
            )
        for block in source.blocks(block_frames):
            mono = _downmix(block)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=False)
            if len(mono):
                yield np.clip(mono, -1.0, 1.0)
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                yield np.clip(tail, -1.0, 1.0)
    finally:
        source.close()


def audio_info(path: Path, *, allow_truncated: bool = False) -> tuple[float, int, int]:
    """``(duration_seconds, sample_rate, channels)`` from the header, not decoding.

    Raises ``AudioError`` like ``load_audio`` for missing, empty, non-audio and
    (detectably from the header) truncated files.
    """
    source = _Source(path, allow_truncated)
    source.close()
    if source.frames <= 0:
        raise AudioError(f"{source.name}: file is empty (no audio frames)")
    return source.frames / source.sample_rate, source.sample_rate, source.channels


# ------------------------------------------------------------------ raw PCM

PcmFormat = Literal["s16le", "f32le"]
_PCM_DTYPES: dict[str, np.dtype] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}


def _pcm_dtype(fmt: str) -> np.dtype:
    try:
        return _PCM_DTYPES[fmt]
    except KeyError:
        raise ValueError(
            f"unknown PCM format {fmt!r}; use 's16le' or 'f32le'"
        ) from None


def pcm_to_float(data: bytes | bytearray | memoryview, fmt: PcmFormat) -> np.ndarray:
    """Raw little-endian PCM bytes to float32 samples (int16 is divided by 32768).

    Raises ``ValueError`` when the byte count is not a whole number of samples.
    """
    dtype = _pcm_dtype(fmt)
    if len(data) % dtype.itemsize:
        raise ValueError(
            f"{fmt} audio needs a multiple of {dtype.itemsize} bytes, got {len(data)}"
        )
    samples = np.frombuffer(data, dtype=dtype)
    if fmt == "s16le":
        return samples.astype(np.float32) / np.float32(32768.0)
    return samples.astype(np.float32)


def float_to_pcm(samples: np.ndarray, fmt: PcmFormat) -> bytes:
    """Float samples to raw little-endian PCM bytes.

    For ``s16le`` samples are clipped to [-1, 1], scaled by 32768, rounded and
    saturated to int16, so ``pcm_to_float(float_to_pcm(x))`` is within 1/32768
    of ``x``.
    """
    dtype = _pcm_dtype(fmt)
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if fmt == "s16le":
        scaled = np.round(np.clip(samples, -1.0, 1.0) * 32768.0)
        return np.clip(scaled, -32768, 32767).astype(dtype).tobytes()
    return samples.astype(dtype).tobytes()


def write_wav_atomic(
    path: Path,
    samples: np.ndarray,
    sample_rate: int,
    subtype: Literal["PCM_16", "PCM_24", "FLOAT"] = "PCM_16",
) -> None:
    """Write (T,) or (T, channels) float samples as a WAV file, atomically.

    The file is written to a temporary name in the same directory, fsynced and
    renamed over ``path``, so a reader never sees a partial file.
    """
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim not in (1, 2):
        raise ValueError(f"samples must be (T,) or (T, channels), got {data.shape}")
    with atomic_output(path) as file:
        sf.write(file, data, sample_rate, subtype=subtype, format="WAV")
