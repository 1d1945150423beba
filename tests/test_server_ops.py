"""Operations: graceful shutdown finishes in-flight results, structured logs,
the ``speech client`` commands and ``speech serve`` itself."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from server.app import BackgroundServer, JsonFormatter, create_app
from server.client import AsrClient, TtsClient
from server.config import ServerConfig
from speech.audio import load_audio
from speech.cli import main as cli_main

REPO = Path(__file__).resolve().parent.parent


def test_graceful_shutdown_finishes_in_flight_results(server_models, speech_file):
    recognizer, synthesizer = server_models
    app = create_app(ServerConfig(threads=1), recognizer, synthesizer)
    server = BackgroundServer(app).start()
    samples, _ = sf.read(speech_file, dtype="float32")
    text = "A long answer that is still being spoken when the server stops. " * 4
    expected_tts = len(synthesizer.synthesize(text))

    async def asr_client():
        results = []
        async with AsrClient(server.ws_url("/asr")) as asr:

            async def send():  # real-time pace, no 'end'
                for start in range(0, len(samples), 1600):
                    await asr.send(samples[start : start + 1600])
                    await asyncio.sleep(0.1)

            sending = asyncio.create_task(send())
            try:
                async for result in asr.results():
                    results.append(result)
            except Exception as error:
                return results, error
            finally:
                sending.cancel()
        return results, None

    async def tts_client():
        async with TtsClient(server.ws_url("/tts")) as tts:
            await tts.request(text, pace=0.5)
            events = []
            try:
                async for event, _ in tts.receive():
                    events.append(event)
            except Exception as error:
                return events, error
        return events, None

    async def run():
        asr = asyncio.create_task(asr_client())
        tts = asyncio.create_task(tts_client())
        await asyncio.sleep(1.0)
        stopper.start()
        return await asr, await tts

    stopper = threading.Thread(target=server.stop)

    (results, asr_error), (events, tts_error) = asyncio.run(run())
    assert results and results[-1]["type"] == "final" and results[-1]["last"]
    assert asr_error.code == "server_shutdown" and asr_error.close_code == 1001
    done = [e for e in events if e["type"] == "done"]
    assert len(done) == 1 and not done[0]["cancelled"]
    assert done[0]["samples"] == len(synthesizer.synthesize(text, pace=0.5))
    assert tts_error.code == "server_shutdown" and tts_error.close_code == 1001
    assert expected_tts > 0
    stopper.join(30)
    assert server.thread is None  # the server has stopped


def test_structured_logs(serve, caplog) -> None:
    server = serve()
    with caplog.at_level(logging.INFO, logger="server"):

        async def run():
            async with TtsClient(server.ws_url("/tts")) as tts:
                _ = [c async for c in tts.synthesize("Hi.")]

        asyncio.run(run())
        time.sleep(0.3)
    ends = [r for r in caplog.records if r.getMessage() == "session_end"]
    assert ends, [r.getMessage() for r in caplog.records]
    line = json.loads(JsonFormatter().format(ends[-1]))
    assert line["event"] == "session_end" and line["kind"] == "tts"
    assert line["close_code"] == 1000 and line["requests"] == 1
    assert {"session", "client", "seconds", "bytes_in", "bytes_out"} <= set(line)


def test_speech_client_commands(serve, speech_file, tmp_path, capsys) -> None:
    server = serve()
    code = cli_main(["client", "asr", str(speech_file), "--url", server.ws_url("/asr")])
    out = capsys.readouterr().out
    assert code == 0 and out.strip()
    code = cli_main(
        ["client", "asr", str(speech_file), "--json", "--url", server.ws_url("/asr")]
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert code == 0 and lines[-1]["type"] == "final" and lines[-1]["last"]
    # the session's options: the same as the library stream with them
    recognizer = server.hub.recognizer
    samples = load_audio(speech_file, 16000)
    plain = recognizer.stream()
    default = [
        e.segment.text
        for e in plain.accept_waveform(samples) + plain.finish()
        if e.kind == "final" and e.segment.text
    ]
    for flags, options in (
        (["--no-rescore"], {"rescore": False}),
        (
            ["--beam-size", "3", "--vtln", "1.2,1.5"],
            {"beam_size": 3, "vtln": (1.2, 1.5)},
        ),
    ):
        code = cli_main(
            ["client", "asr", str(speech_file), *flags, "--url", server.ws_url("/asr")]
        )
        stream = recognizer.stream(**options)
        events = stream.accept_waveform(samples) + stream.finish()
        expected = [
            e.segment.text for e in events if e.kind == "final" and e.segment.text
        ]
        assert code == 0 and capsys.readouterr().out.split("\n")[:-1] == expected
        assert expected != default  # the options change the text
    wav = tmp_path / "hello.wav"
    code = cli_main(
        [
            "client",
            "tts",
            "Hello there.",
            "-o",
            str(wav),
            "--url",
            server.ws_url("/tts"),
        ]
    )
    assert code == 0 and len(load_audio(wav, 16000)) > 1000
    code = cli_main(
        ["client", "asr", str(speech_file), "--url", "ws://127.0.0.1:9/asr"]
    )
    assert code == 1


@pytest.mark.slow
def test_speech_serve_process(model_dir, tts_dir, speech_file) -> None:
    from tests.server_util import start_serve

    process, port, health = start_serve(
        "--asr-model", str(model_dir), "--tts-model", str(tts_dir),
        "--max-sessions", "4", "--threads", "1",
    )  # fmt: skip
    try:
        assert health["sessions"]["max"] == 4
        assert health["tts"]["voices"] == ["default", "tiny"]
        url = f"ws://127.0.0.1:{port}/asr"
        assert cli_main(["client", "asr", str(speech_file), "--url", url]) == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        log = [json.loads(x) for x in process.stderr.read().splitlines() if x]
        events = [entry["event"] for entry in log]
        assert "listening" in events and "session_end" in events and "drain" in events
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_asr_only_server(serve) -> None:
    server = serve(tts=False)
    from tests.server_util import errors, exchange

    received, code = asyncio.run(
        exchange(server.ws_url("/tts"), [{"type": "synthesize", "text": "Hi."}])
    )
    assert errors(received)[0]["code"] == "not_served" and code == 1003
    np.testing.assert_equal(server.hub.health()["sessions"]["tts"], 0)


def test_serve_flags_reach_the_server_config(capsys) -> None:
    """`speech serve`'s rescoring flags land in ServerConfig, and a
    budget that is not positive is refused in one line."""
    from server.config import ServerConfig
    from speech.cli import build_parser

    parser = build_parser()
    config = ServerConfig.from_args(parser.parse_args(["serve"]))
    assert config.rescore is True and config.max_rescore_seconds == 30.0
    args = parser.parse_args(["serve", "--no-rescore", "--max-rescore-seconds", "5"])
    config = ServerConfig.from_args(args)
    assert config.rescore is False and config.max_rescore_seconds == 5.0
    with pytest.raises(ValueError, match="max_rescore_seconds must be positive"):
        ServerConfig.from_args(
            parser.parse_args(["serve", "--max-rescore-seconds", "0"])
        )
    # `speech serve` itself: exit 2 and one line, no traceback
    assert (
        cli_main(["serve", "--max-rescore-seconds", "-1", "--max-sessions", "5"]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == "speech serve: max_rescore_seconds must be positive"
