"""Load and soak tests of ``speech serve`` on loopback.

    python benchmarks/server_load.py asr --sessions 10,20,30,40,50,60
    python benchmarks/server_load.py tts --sessions 5,10,20,30
    python benchmarks/server_load.py soak --minutes 10 --asr-sessions 20 \
        --tts-sessions 4

The server runs in a process of its own (``speech serve``), started here
with the shipped models, or with ``--asr-model/--tts-model``, or with
random-weight models of the default architectures (``--random``: the shipped
models' compute, not their output); ``--url`` uses a server that is already
running. The clients run in this process.

ASR: every session streams speech (flite, looped) at real-time pace in
100 ms frames. Partial-result latency is measured by the client: each result
says how much audio it covers (``processed``); its latency is the time since
the client sent the frame holding that audio. The first ``--warmup`` seconds
of each session are not counted.

TTS: every session asks for a sentence, plays it at real-time pace (waits for
its duration), and asks for the next. Time to first audio is measured from
sending the request to receiving the first audio; an underrun is a chunk that
arrives after a real-time player would have needed it. Before the sweep, two
sessions run for ``--warmup`` seconds untimed, so the server's first
syntheses are not counted.

For each session count the report gives p50/p95/p99 and the largest count
whose p95 stays within ``--target-ms`` (300 ms). Soak: sessions come and go
for ``--minutes`` while the server's resident memory is sampled; the report
gives its growth after the first minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "A stitch in time saves nine, and a penny saved is a penny earned.",
    "Please call me back when you have a minute to talk about the plan.",
    "The weather today is sunny with a light breeze from the west.",
    "Turn left at the next corner and the station is on your right.",
]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ------------------------------------------------------------------- models


def make_random_models(folder: Path) -> tuple[Path, Path]:
    """Random-weight models of the default sizes (the shipped models'
    architecture and so their compute), saved as model folders."""
    import torch

    from speech.asr.config import AsrConfig
    from speech.asr.model import AsrModel, save_model
    from speech.asr.tokenizer import Tokenizer
    from speech.text.phonemize import PHONEME_SYMBOLS
    from speech.tts.config import FastPitchConfig
    from speech.tts.fastpitch import FastPitch, save_tts
    from speech.tts.vocoder import Vocoder, VocoderConfig, save_vocoder

    torch.manual_seed(0)
    config = AsrConfig()
    words = " ".join(SENTENCES).lower().replace(",", "").replace(".", "").split()
    rng = random.Random(0)
    corpus = [" ".join(rng.choices(words, k=12)) for _ in range(2000)]
    corpus += [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=8)) for _ in range(2000)
    ]
    tokenizer = Tokenizer.train(corpus, config.vocab_size, folder / "tok")
    model = AsrModel(config.with_updates(vocab_size=tokenizer.vocab_size))
    with torch.no_grad():
        model.ctc.bias[0] = 1.5  # mostly blanks, some tokens: text changes often
    model.tokenizer = tokenizer
    save_model(model, folder / "asr")
    voice = FastPitch(FastPitchConfig(symbols=PHONEME_SYMBOLS))
    with torch.no_grad():
        voice.duration_predictor.out.bias.fill_(math.log(1 + 5))  # ~80 ms phones
    save_tts(voice, folder / "tts")
    save_vocoder(Vocoder(VocoderConfig()), folder / "tts" / "vocoder")
    return folder / "asr", folder / "tts"


def speech_audio(seconds: float = 30.0, pause: float = 0.6) -> np.ndarray:
    """int16 speech at 16 kHz (flite), ``pause`` seconds between sentences
    (0.6: shorter than the 1 s that closes a segment), ``seconds`` long."""
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, sentence in enumerate(SENTENCES):
            wav = Path(tmp) / f"{i}.wav"
            subprocess.run(
                ["flite", "-voice", "slt", "-t", sentence, "-o", str(wav)], check=True
            )
            import soundfile as sf

            samples, rate = sf.read(wav, dtype="int16")
            assert rate == 16000
            parts += [samples, np.zeros(int(pause * rate), np.int16)]
    audio = np.concatenate(parts)
    repeats = int(math.ceil(seconds * 16000 / len(audio)))
    return np.tile(audio, repeats)[: int(seconds * 16000)]


# ------------------------------------------------------------------- server


class ServerProcess:
    """``speech serve`` in a subprocess on a free loopback port."""

    def __init__(
        self,
        asr_model: Path | None,
        tts_model: Path | None,
        threads: int,
        device: str = "cpu",
        backend: str = "torch",
        vtln: str = "1",
        rescore: bool = True,
    ):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        command = [
            sys.executable, "-m", "speech.cli", "serve", "--port", str(self.port),
            "--max-sessions", "2000", "--idle-timeout", "600",
            "--log-format", "text", "--threads", str(threads), "--device", device,
            "--backend", backend, "--vtln", vtln,
            "--rescore" if rescore else "--no-rescore",
        ]  # fmt: skip
        if asr_model:
            command += ["--asr-model", str(asr_model)]
        if tts_model:
            command += ["--tts-model", str(tts_model)]
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            stderr=self.log,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
                ),
            },  # fmt: skip
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(self.url("/healthz"), timeout=2).read()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = Path(self.log.name).read_text()[-3000:]
                    raise RuntimeError(f"the server did not start:\n{log}") from None
                time.sleep(0.3)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def scrape(http_url: str) -> dict[str, float]:
    """The samples of /metrics, by their full name (labels included)."""
    text = urllib.request.urlopen(http_url + "/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def histogram_quantile(before: dict, after: dict, name: str, q: float) -> float:
    """Quantile of a histogram's new observations (linear within a bucket)."""
    buckets = []
    for key, value in after.items():
        if key.startswith(name + "_bucket{le="):
            bound = float(key.split('"')[1])
            buckets.append((bound, value - before.get(key, 0.0)))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    target = q * buckets[-1][1]
    low_bound, low_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= target:
            if math.isinf(bound):
                return low_bound
            share = (target - low_count) / max(count - low_count, 1e-9)
            return low_bound + share * (bound - low_bound)
        low_bound, low_count = bound, count
    return float("nan")


# ---------------------------------------------------------------------- ASR


@dataclass
class AsrReport:
    sessions: int
    seconds: float
    results: int = 0
    completed: int = 0  # sessions that received their last final
    p50_ms: float = float("nan")
    p95_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    end_to_last_final_ms: float = float("nan")
    finals: int = 0  # finals before the last (endpoints while streaming)
    final_p95_ms: float = float("nan")  # their latency
    errors: list[str] = field(default_factory=list)
    server_p95_ms: float = float("nan")  # audio arrival -> result, in the server
    server_rtf: float = float("nan")
    mean_batch: float = float("nan")
    server_cpu_per_stream: float = float("nan")  # cores one real-time stream uses
    load_average: float = float("nan")


async def _asr_session(
    url: str,
    audio: np.ndarray,
    seconds: float,
    warmup: float,
    frame_seconds: float,
    latencies: list[float],
    ends: list[float],
    errors: list[str],
    finals: list[float],
) -> None:
    from websockets.asyncio.client import connect

    rate = 16000
    frame = int(frame_seconds * rate)
    offset = random.randrange(0, len(audio) - int(seconds * rate))
    total_frames = int(seconds / frame_seconds)
    sent_at: list[float] = []  # time frame i was sent
    await asyncio.sleep(random.random())  # desynchronise the sessions
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(
            json.dumps({"type": "start", "sample_rate": rate, "format": "s16le"})
        )
        json.loads(await ws.recv())
        end_sent = [0.0]

        async def sender() -> None:
            started = time.monotonic()
            for i in range(total_frames):
                due = started + (i + 1) * frame_seconds
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                chunk = audio[offset + i * frame : offset + (i + 1) * frame]
                sent_at.append(time.monotonic())
                await ws.send(chunk.tobytes())
            end_sent[0] = time.monotonic()
            await ws.send(json.dumps({"type": "end"}))

        sending = asyncio.create_task(sender())
        try:
            async for raw in ws:
                now = time.monotonic()
                message = json.loads(raw)
                if message["type"] == "error":
                    errors.append(message["code"])
                    break
                if message.get("last"):
                    ends.append(now - end_sent[0])
                    break
                index = math.ceil(message["processed"] * rate / frame) - 1
                if 0 <= index < len(sent_at) and index * frame_seconds >= warmup:
                    latencies.append(now - sent_at[index])
                    if message["type"] == "final":
                        finals.append(now - sent_at[index])
        finally:
            sending.cancel()


async def asr_load(
    url: str,
    audio: np.ndarray,
    sessions: int,
    seconds: float,
    warmup: float = 2.0,
    frame_seconds: float = 0.1,
) -> AsrReport:
    latencies: list[float] = []
    ends: list[float] = []
    errors: list[str] = []
    finals: list[float] = []
    outcomes = await asyncio.gather(
        *(
            _asr_session(
                url,
                audio,
                seconds,
                warmup,
                frame_seconds,
                latencies,
                ends,
                errors,
                finals,
            )
            for _ in range(sessions)
        ),
        return_exceptions=True,
    )
    errors += [repr(o) for o in outcomes if isinstance(o, BaseException)]
    report = AsrReport(
        sessions, seconds, results=len(latencies), completed=len(ends), errors=errors
    )
    if latencies:
        ms = [x * 1000 for x in latencies]
        report.p50_ms, report.p95_ms = percentile(ms, 50), percentile(ms, 95)
        report.p99_ms, report.max_ms = percentile(ms, 99), max(ms)
    if ends:
        report.end_to_last_final_ms = percentile([x * 1000 for x in ends], 95)
    report.finals = len(finals)
    if finals:
        report.final_p95_ms = percentile([x * 1000 for x in finals], 95)
    return report


# ---------------------------------------------------------------------- TTS


@dataclass
class TtsReport:
    sessions: int
    seconds: float
    requests: int = 0
    p50_ms: float = float("nan")
    p95_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    underruns: int = 0
    audio_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    server_p95_ms: float = float("nan")  # request -> first audio, in the server
    server_rtf: float = float("nan")
    mean_batch: float = float("nan")
    server_cpu_per_stream: float = float("nan")  # cores one playing session uses
    load_average: float = float("nan")


async def _tts_session(
    url: str,
    seconds: float,
    first: list[float],
    stats: dict[str, float],
    errors: list[str],
) -> None:
    from websockets.asyncio.client import connect

    await asyncio.sleep(random.random())
    deadline = time.monotonic() + seconds
    async with connect(url, compression=None, max_size=None) as ws:
        while time.monotonic() < deadline:
            text = random.choice(SENTENCES)
            requested = time.monotonic()
            await ws.send(json.dumps({"type": "synthesize", "text": text}))
            rate = 16000
            first_at = None
            offset = 0
            while True:
                raw = await ws.recv()
                now = time.monotonic()
                if isinstance(raw, bytes):
                    if first_at is None:
                        first_at = now
                        first.append(now - requested)
                    # a player started at first_at needs sample `offset` now
                    if now > first_at + offset / rate + 0.05:
                        stats["underruns"] += 1
                    offset += len(raw) // 2
                    continue
                message = json.loads(raw)
                if message["type"] == "start":
                    rate = message["sample_rate"]
                elif message["type"] == "error":
                    errors.append(message["code"])
                    return
                elif message["type"] == "done":
                    break
            stats["requests"] += 1
            stats["audio"] += offset / rate
            if first_at is not None:  # wait until played, then ask again
                await asyncio.sleep(
                    max(0.0, first_at + offset / rate - time.monotonic())
                )


async def tts_load(url: str, sessions: int, seconds: float) -> TtsReport:
    first: list[float] = []
    errors: list[str] = []
    stats = {"underruns": 0.0, "requests": 0.0, "audio": 0.0}
    outcomes = await asyncio.gather(
        *(_tts_session(url, seconds, first, stats, errors) for _ in range(sessions)),
        return_exceptions=True,
    )
    errors += [repr(o) for o in outcomes if isinstance(o, BaseException)]
    report = TtsReport(
        sessions,
        seconds,
        requests=int(stats["requests"]),
        underruns=int(stats["underruns"]),
        audio_seconds=round(stats["audio"], 1),
        errors=errors,
    )
    if first:
        ms = [x * 1000 for x in first]
        report.p50_ms, report.p95_ms = percentile(ms, 50), percentile(ms, 95)
        report.p99_ms, report.max_ms = percentile(ms, 99), max(ms)
    return report


# --------------------------------------------------------------------- main


def _with_server_stats(report, before: dict, after: dict, kind: str):  # type: ignore[no-untyped-def]
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    audio = delta(f"speech_{kind}_audio_seconds_total")
    if audio > 0:
        report.server_rtf = delta(f"speech_{kind}_compute_seconds_total") / audio
    steps = delta(f"speech_{kind}_batch_streams_count")
    if steps > 0:
        report.mean_batch = delta(f"speech_{kind}_batch_streams_sum") / steps
    histogram = {
        "asr": "speech_asr_result_latency_seconds",
        "tts": "speech_tts_first_audio_seconds",
    }[kind]
    report.server_p95_ms = 1000 * histogram_quantile(before, after, histogram, 0.95)
    report.load_average = os.getloadavg()[0]
    return report


def _print(report) -> None:  # type: ignore[no-untyped-def]
    data = {
        k: (round(v, 3) if isinstance(v, float) else v)
        for k, v in asdict(report).items()
    }
    print(json.dumps(data), flush=True)


def run_sweep(
    args: argparse.Namespace, server: ServerProcess | None, http_url: str
) -> list:
    reports = []
    ws_url = http_url.replace("http://", "ws://") + "/" + args.command
    audio = (
        speech_audio(max(60.0, args.seconds + 5), args.pause)
        if args.command == "asr"
        else None
    )
    if args.command == "tts" and args.warmup > 0:
        # untimed: the server's first syntheses (kernel selection, caches on
        # CUDA) would otherwise land in the first step's figures
        asyncio.run(tts_load(ws_url, 2, args.warmup))
    for sessions in [int(x) for x in args.sessions.split(",")]:
        before = scrape(http_url)
        cpu = server.cpu_seconds() if server is not None else float("nan")
        if args.command == "asr":
            report = asyncio.run(
                asr_load(ws_url, audio, sessions, args.seconds, args.warmup)
            )
        else:
            report = asyncio.run(tts_load(ws_url, sessions, args.seconds))
        report = _with_server_stats(report, before, scrape(http_url), args.command)
        if server is not None:
            used = server.cpu_seconds() - cpu
            report.server_cpu_per_stream = used / (sessions * args.seconds)
        _print(report)
        reports.append(report)
        time.sleep(1.0)
    ok = [r.sessions for r in reports if r.p95_ms <= args.target_ms and not r.errors]
    print(
        f"largest {args.command} session count with p95 <= {args.target_ms:g} ms: "
        f"{max(ok) if ok else 'none'}",
        flush=True,
    )
    costs = [r.server_cpu_per_stream for r in reports if r.sessions >= 10]
    if costs and not math.isnan(costs[-1]):
        cost = float(np.median(costs))
        cores = os.cpu_count() or 1
        print(
            f"server CPU per {args.command} session: {cost:.4f} cores (median); "
            f"{cores} otherwise idle cores would carry about {cores / cost:.0f}",
            flush=True,
        )
    return reports


def run_soak(
    args: argparse.Namespace, server: ServerProcess | None, http_url: str
) -> None:
    ws = http_url.replace("http://", "ws://")
    audio = speech_audio(90.0)
    seconds = args.minutes * 60
    samples: list[tuple[float, float]] = []

    async def churn_asr(stop_at: float) -> list[AsrReport]:
        reports = []
        while time.monotonic() < stop_at - 5:
            length = min(60.0, stop_at - time.monotonic())
            reports.append(
                await asr_load(ws + "/asr", audio, args.asr_sessions, length)
            )
        return reports

    async def churn_tts(stop_at: float) -> list[TtsReport]:
        reports = []
        while time.monotonic() < stop_at - 5:
            length = min(60.0, stop_at - time.monotonic())
            reports.append(await tts_load(ws + "/tts", args.tts_sessions, length))
        return reports

    async def sample_memory(stop_at: float) -> None:
        started = time.monotonic()
        while time.monotonic() < stop_at:
            if server is not None:
                samples.append((time.monotonic() - started, server.rss_mb()))
            await asyncio.sleep(10)

    async def main() -> tuple:
        stop_at = time.monotonic() + seconds
        return await asyncio.gather(
            churn_asr(stop_at), churn_tts(stop_at), sample_memory(stop_at)
        )

    asr_reports, tts_reports, _ = asyncio.run(main())
    for report in asr_reports + tts_reports:
        _print(report)
    if samples:
        settled = [(t, m) for t, m in samples if t >= 60] or samples
        times = np.array([t for t, _ in settled]) / 60
        memory = np.array([m for _, m in settled])
        slope = float(np.polyfit(times, memory, 1)[0]) if len(settled) > 1 else 0.0
        print(
            json.dumps(
                {
                    "soak_minutes": args.minutes,
                    "rss_mb_first": round(samples[0][1], 1),
                    "rss_mb_after_1_min": round(memory[0], 1),
                    "rss_mb_last": round(samples[-1][1], 1),
                    "rss_mb_max": round(max(m for _, m in samples), 1),
                    "rss_growth_mb_per_min_after_1_min": round(slope, 2),
                    "samples": [(round(t), round(m, 1)) for t, m in samples],
                }
            ),
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("asr", "tts", "soak"))
    parser.add_argument("--sessions", default="10,20,30,40,50,60")
    parser.add_argument("--seconds", type=float, default=20.0, help="per step")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--target-ms", type=float, default=300.0)
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length")
    parser.add_argument("--asr-sessions", type=int, default=20, help="soak")
    parser.add_argument("--tts-sessions", type=int, default=4, help="soak")
    parser.add_argument("--url", help="a running server (http://HOST:PORT)")
    parser.add_argument("--asr-model")
    parser.add_argument("--tts-model")
    parser.add_argument(
        "--random", action="store_true", help="random default-size models"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu", help="the server's: cpu, cuda")
    parser.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="the server's (onnx: the models exported in speech/models/onnx "
        "unless --asr-model/--tts-model name export folders)",
    )
    parser.add_argument(
        "--vtln",
        default="1",
        help="the server's VTLN setting for sessions (speech serve --vtln), "
        "e.g. 0.85,1,1.15: a warp ensemble, one encoder row per factor",
    )
    parser.add_argument(
        "--rescore",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the server's endpoint rescoring (speech serve --rescore, its default)",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.6,
        help="ASR: seconds between sentences (1.2: each closes a segment, a "
        "final every 3-4 s; 0.6: finals only at the 20 s limit)",
    )
    args = parser.parse_args(argv)

    random.seed(0)
    server = None
    http_url = args.url
    models = tempfile.TemporaryDirectory()
    if http_url is None:
        asr_model, tts_model = args.asr_model, args.tts_model
        if args.random:
            asr_model, tts_model = make_random_models(Path(models.name))
        server = ServerProcess(
            asr_model,
            tts_model,
            args.threads,
            args.device,
            args.backend,
            args.vtln,
            args.rescore,
        )
        http_url = server.url("")
    try:
        if args.command == "soak":
            run_soak(args, server, http_url)
        else:
            run_sweep(args, server, http_url)
    finally:
        if server is not None:
            server.stop()
        models.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
