"""What every WebSocket session does, whatever it serves: admission (drain,
token, origin, capacity), a bounded outbox drained by one sender task, reads
with idle and session-length deadlines, and the close: a JSON error first
when it is a refusal, then the close code.

A session speaks raw ASGI (``scope, receive, send``). A client that stops
reading makes the server's sends wait; after ``send_timeout`` the session is
dropped: its model work stops, its slot is freed, and the connection is
aborted through the transport that ``server.app`` records in the scope
(uvicorn's). Without that hook the server's keepalive timeout drops it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from server.protocol import ProtocolError

if TYPE_CHECKING:
    from server.hub import Hub

__all__ = ["Stop", "WsSession", "bearer_token", "origin_allowed"]

logger = logging.getLogger("server.session")

Message = dict[str, Any]
TRANSPORT_KEY = "speech.transport"


class Stop(Exception):
    """The session must end; ``error`` is what to tell the client (None: a
    normal end, or the client is gone)."""

    def __init__(self, error: ProtocolError | None = None, code: int = 1000) -> None:
        super().__init__(error.message if error else "stop")
        self.error = error
        self.code = error.close_code if error else code

    def detach(self) -> None:
        """Drop the tracebacks (and chained exceptions) of this stop and its
        error: they hold the frames that hold the session, and would keep it
        alive until the next full garbage collection."""
        for exception in (self, self.error):
            if exception is not None:
                exception.__traceback__ = None
                exception.__context__ = exception.__cause__ = None


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def bearer_token(scope: dict[str, Any]) -> str | None:
    """The token of ``Authorization: Bearer ...`` or of ``?token=...``."""
    header = _header(scope, b"authorization")
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("token")
    return values[0] if values else None


def token_ok(scope: dict[str, Any], token: str | None) -> bool:
    if not token:
        return True
    given = bearer_token(scope)
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def origin_allowed(scope: dict[str, Any], allowed: tuple[str, ...]) -> bool:
    """No Origin (not a browser), the same origin as the Host, or a listed
    one ("*" allows any)."""
    origin = _header(scope, b"origin")
    if origin is None or "*" in allowed:
        return True
    if origin.rstrip("/") in {o.rstrip("/") for o in allowed}:
        return True
    host = _header(scope, b"host")
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


class WsSession:
    """One WebSocket connection (``kind`` "asr" or "tts")."""

    def __init__(
        self, hub: Hub, kind: str, scope: dict[str, Any], receive: Any, send: Any
    ) -> None:
        self.hub = hub
        self.config = hub.config
        self.kind = kind
        self.scope = scope
        self._receive = receive
        self._send = send
        self.id = uuid.uuid4().hex[:12]
        host, port = scope.get("client") or ("?", 0)
        self.client = f"{host}:{port}"
        self.opened = time.monotonic()
        self.last_message = self.opened
        self.outbox: deque[Message] = deque()
        self.outbox_bytes = 0
        self._outbox_ready = asyncio.Event()
        self.outbox_drained = asyncio.Event()  # set while outbox_bytes is low
        self.outbox_drained.set()
        self._stop = asyncio.Event()
        self.stop_error: ProtocolError | None = None
        self.stop_reason = ""
        self.disconnected = False
        self._recv_task: asyncio.Task[Message] | None = None
        self._stop_task: asyncio.Task[bool] | None = None
        self._sender: asyncio.Task[None] | None = None
        self.busy = False  # the session has work in flight (not idle)
        self.on_drained: Any = None  # called when a large outbox has drained
        self.bytes_in = 0
        self.bytes_out = 0

    # ------------------------------------------------------------- admission

    async def admit(self) -> bool:
        """Accept the connection; on a refusal send the JSON error and close."""
        try:
            message = await self._receive()
            if message["type"] != "websocket.connect":
                return False
            refusal = self.hub.admission_error(self.scope)
            await self._send({"type": "websocket.accept"})
        except Exception:  # gone during the handshake
            self.disconnected = True
            return False
        if refusal is None:
            refusal = self.hub.open_session(self)
        if refusal is not None:
            self.hub.metrics.refusals_total.labels(refusal.code).inc()
            self._log("session_refused", code=refusal.code)
            await self._send_direct(refusal.to_message())
            await self._close_direct(refusal.close_code, refusal.code)
            return False
        self._sender = asyncio.create_task(self._send_loop(), name=f"send-{self.id}")
        self._log("session_open")
        return True

    # ------------------------------------------------------------------ output

    def send_json(self, value: dict[str, Any]) -> None:
        self._enqueue({"type": "websocket.send", "text": json.dumps(value)})

    def send_bytes(self, data: bytes) -> None:
        self._enqueue({"type": "websocket.send", "bytes": data})

    def _enqueue(self, message: Message) -> None:
        if self.disconnected:
            return
        size = len(message.get("text") or message.get("bytes") or b"")
        self.outbox.append(message)
        self.outbox_bytes += size
        if self.outbox_bytes > self.config.max_outbox_bytes // 2:
            self.outbox_drained.clear()
        self._outbox_ready.set()

    async def _send_loop(self) -> None:
        try:
            while True:
                if not self.outbox:
                    self._outbox_ready.clear()
                    await self._outbox_ready.wait()
                    continue
                message = self.outbox.popleft()
                size = len(message.get("text") or message.get("bytes") or b"")
                if message["type"] == "websocket.close":
                    await asyncio.wait_for(
                        self._send(message), self.config.send_timeout
                    )
                    return
                await asyncio.wait_for(self._send(message), self.config.send_timeout)
                self.bytes_out += size
                self.outbox_bytes -= size
                if (
                    not self.outbox_drained.is_set()
                    and self.outbox_bytes <= self.config.max_outbox_bytes // 4
                ):
                    self.outbox_drained.set()
                    if self.on_drained is not None:
                        self.on_drained()
        except TimeoutError:
            self.stop(
                ProtocolError(
                    "slow_consumer",
                    f"a send waited {self.config.send_timeout:g} s for the client "
                    "to read",
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception:  # the client is gone (uvicorn raises ClientDisconnected)
            self.disconnected = True
            self.stop()

    async def _send_direct(self, value: dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(
                self._send({"type": "websocket.send", "text": json.dumps(value)}),
                self.config.send_timeout,
            )
        except Exception:
            self.disconnected = True

    async def _close_direct(self, code: int, reason: str = "") -> None:
        try:
            await asyncio.wait_for(
                self._send({"type": "websocket.close", "code": code, "reason": reason}),
                self.config.send_timeout,
            )
        except Exception:
            self.disconnected = True
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection now (a client that does not read)."""
        transport = self.scope.get(TRANSPORT_KEY)
        if transport is not None:
            transport.abort()
        self.disconnected = True

    # ------------------------------------------------------------------- input

    def stop(self, error: ProtocolError | None = None, reason: str = "") -> None:
        """Ask the session to end (from any task): ``next_message`` raises
        ``Stop``. The first reason wins."""
        if not self._stop.is_set():
            self.stop_error = error
            self.stop_reason = reason or (error.code if error else "stopped")
            self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def wait(self, event: asyncio.Event) -> None:
        """Wait for ``event``; raises ``Stop`` if the session is stopped first."""
        if event.is_set():
            return
        waiter = asyncio.ensure_future(event.wait())
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stopper.cancel()
        if not event.is_set():
            raise Stop(self.stop_error)

    async def next_message(self) -> Message:
        """The next client message (``websocket.receive``).

        Raises ``Stop`` on a disconnect, a ``stop()``, the idle timeout (not
        while ``busy``) or the session's maximum length.
        """
        while True:
            if self._stop.is_set():
                raise Stop(self.stop_error)
            now = time.monotonic()
            session_end = self.opened + self.config.max_session_seconds
            idle_end = self.last_message + self.config.idle_timeout
            deadline = session_end if self.busy else min(session_end, idle_end)
            if now >= session_end:
                raise Stop(
                    ProtocolError(
                        "session_too_long",
                        f"sessions last at most {self.config.max_session_seconds:g} s",
                    )
                )
            if now >= deadline:
                raise Stop(
                    ProtocolError(
                        "idle_timeout",
                        f"no message for {self.config.idle_timeout:g} s",
                    )
                )
            if self._recv_task is None:
                self._recv_task = asyncio.ensure_future(self._receive())
            if self._stop_task is None:
                self._stop_task = asyncio.ensure_future(self._stop.wait())
            done, _ = await asyncio.wait(
                {self._recv_task, self._stop_task},
                timeout=min(deadline - now, 1.0),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if self._recv_task in done:
                message = self._recv_task.result()
                self._recv_task = None
                if message["type"] == "websocket.disconnect":
                    self.disconnected = True
                    raise Stop()
                self.last_message = time.monotonic()
                data = message.get("bytes") or message.get("text") or ""
                self.bytes_in += len(data)
                if len(data) > self.config.max_frame_bytes:
                    raise Stop(
                        ProtocolError(
                            "frame_too_large",
                            f"message of {len(data)} bytes; the limit is "
                            f"{self.config.max_frame_bytes}",
                        )
                    )
                return message

    # ------------------------------------------------------------------- close

    async def close(self, stop: Stop) -> None:
        """Send what is queued, the JSON error if any, then the close."""
        if self.disconnected:
            return
        if stop.error is not None:
            self.hub.metrics.refusals_total.labels(stop.error.code).inc()
            if stop.error.code != "slow_consumer":
                self.send_json(stop.error.to_message())
        if stop.error is not None and stop.error.code == "slow_consumer":
            # The sender is stuck behind the unread data: try once, briefly.
            for message in (
                {"type": "websocket.send", "text": json.dumps(stop.error.to_message())},
                {
                    "type": "websocket.close",
                    "code": stop.code,
                    "reason": "slow_consumer",
                },
            ):
                try:
                    await asyncio.wait_for(self._send(message), 0.5)
                except Exception:
                    break
            self.abort()
            return
        reason = stop.error.code if stop.error else ""
        self._enqueue({"type": "websocket.close", "code": stop.code, "reason": reason})
        if self._sender is not None:
            try:
                await asyncio.wait_for(
                    asyncio.shield(self._sender), self.config.send_timeout + 1
                )
            except (TimeoutError, Exception):
                self.abort()

    async def cleanup(self) -> None:
        """Cancel this session's helper tasks (always called at the end)."""
        for task in (self._recv_task, self._stop_task, self._sender):
            if task is not None and not task.done():
                task.cancel()
        for task in (self._recv_task, self._stop_task, self._sender):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._recv_task = self._stop_task = self._sender = None
        self.outbox.clear()
        self.hub.close_session(self)

    def _log(self, event: str, **fields: Any) -> None:
        logger.info(
            event,
            extra={
                "fields": {
                    "session": self.id,
                    "kind": self.kind,
                    "client": self.client,
                    **fields,
                }
            },
        )

    def log_end(self, stop: Stop, **fields: Any) -> None:
        self._log(
            "session_end",
            reason=self.stop_reason or (stop.error.code if stop.error else "normal"),
            close_code=stop.code,
            seconds=round(time.monotonic() - self.opened, 3),
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            **fields,
        )
