"""Helpers of the server tests: raw WebSocket exchanges, leak checks and
`speech serve` processes."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

REPO = Path(__file__).resolve().parent.parent


async def exchange(
    url: str,
    messages: list[Any],
    headers: dict[str, str] | None = None,
    timeout: float = 20.0,
    pause: float = 0.0,
) -> tuple[list[Any], int | None]:
    """Send ``messages`` (dicts as JSON, bytes as binary), then read until the
    server closes. Returns (JSON messages and byte counts of binary ones,
    close code)."""
    received: list[Any] = []
    async with connect(
        url, additional_headers=headers or {}, compression=None, max_size=None
    ) as ws:

        async def reader() -> None:
            try:
                async for raw in ws:
                    received.append(
                        len(raw) if isinstance(raw, bytes) else json.loads(raw)
                    )
            except ConnectionClosed:
                pass

        reading = asyncio.create_task(reader())
        try:
            for message in messages:
                if isinstance(message, dict):
                    message = json.dumps(message)
                await ws.send(message)
                if pause:
                    await asyncio.sleep(pause)
        except ConnectionClosed:
            pass
        await asyncio.wait_for(reading, timeout)
        return received, ws.close_code


def errors(received: list[Any]) -> list[dict[str, Any]]:
    return [m for m in received if isinstance(m, dict) and m.get("type") == "error"]


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def live_objects(*types: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) in types)


def server_tasks(server: Any) -> set[str]:
    """Names of the tasks alive on the server's event loop, batchers aside."""
    loop = server.hub.loop

    async def names() -> set[str]:
        current = asyncio.current_task()
        return {
            t.get_name()
            for t in asyncio.all_tasks()
            if t is not current and not t.done()
        }

    return asyncio.run_coroutine_threadsafe(names(), loop).result(5)


def start_serve(
    *flags: str, timeout: float = 120.0
) -> tuple[subprocess.Popen, int, dict[str, Any]]:
    """``speech serve FLAGS`` in its own process on a free loopback port,
    returned once ``/healthz`` answers: (process, port, health). Its log is
    on ``process.stderr``; the caller stops the process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "speech.cli", "serve", "--port", str(port), *flags],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as r:
                return process, port, json.loads(r.read())
        except OSError:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read()) from None
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"speech serve not ready in {timeout} s") from None
            time.sleep(0.2)
