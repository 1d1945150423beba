"""The server application: one process, one port, both models.

    app = create_app(ServerConfig(asr_model="models/asr", tts_model="voice/"))
    with BackgroundServer(app) as server:      # tests, benchmarks, embedding
        print(server.ws_url("/asr"))

``run_server`` is what ``speech serve`` calls: it loads the models, serves
with uvicorn (WebSockets by the ``websockets`` library) and, on SIGINT or
SIGTERM, drains gracefully before uvicorn closes the connections.

Routes: ``/`` (browser demo) and ``/static/*``; ``/healthz``; ``/metrics``
(Prometheus); ``POST /v1/audio/transcriptions`` and ``POST /v1/audio/speech``
(OpenAI-compatible); WebSockets ``/asr`` and ``/tts`` (``server/PROTOCOL.md``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from server.asr import AsrEndpoint
from server.config import ServerConfig
from server.hub import Hub
from server.metrics import CONTENT_TYPE_LATEST
from server.openai_api import error_response, speech, transcriptions
from server.protocol import ProtocolError
from server.session import TRANSPORT_KEY, token_ok
from server.tts import TtsEndpoint

__all__ = ["BackgroundServer", "create_app", "run_server", "uvicorn_config"]

logger = logging.getLogger("server")

STATIC_DIR = Path(__file__).resolve().parent / "static"


# ------------------------------------------------------------------- models


def load_models(config: ServerConfig) -> tuple[Any, Any, str]:
    """(recognizer or None, synthesizer or None, voice name) for ``config``,
    both on ``config.backend`` ("torch" or "onnx"; the ONNX synthesizer loads
    without torch). Missing folders raise ``FileNotFoundError``."""
    recognizer = synthesizer = None
    voice_name = "default"
    if config.asr:
        from speech.asr.recognizer import load_recognizer

        recognizer = load_recognizer(
            config.asr_model,
            backend=config.backend,
            device=config.device,
            vtln=config.vtln,
        )
        # The model's word LM (sessions with beam_size > 1 use it) is read
        # now rather than inside the first such session's start.
        _ = recognizer.fusion
    if config.tts:
        # speech.load_synthesizer imports torch for the PyTorch back end only;
        # no folder: the shipped voice (speech/models/tts) or, for ONNX, the
        # shipped export (speech/models/onnx, built by install.sh).
        from speech import load_synthesizer

        synthesizer = load_synthesizer(
            config.tts_model, backend=config.backend, device=config.device
        )
        if config.tts_model:
            voice_name = Path(config.tts_model).resolve().name
    return recognizer, synthesizer, voice_name


# ------------------------------------------------------------------ the app


class _RecordTransport:
    """Puts the ASGI server's transport (uvicorn's, when it exposes one) in
    the scope of WebSocket connections, so that a session can drop a client
    that does not read (see ``server.session``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None and hasattr(transport, "abort"):
                scope[TRANSPORT_KEY] = transport
        await self.app(scope, receive, send)


async def _index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html")


async def _healthz(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    return JSONResponse(hub.health(), status_code=503 if hub.draining else 200)


async def _metrics(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    if not token_ok(request.scope, hub.config.token):
        return error_response(
            ProtocolError("unauthorized", "a bearer token is required")
        )
    return Response(hub.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def create_app(
    config: ServerConfig | None = None,
    recognizer: Any = None,
    synthesizer: Any = None,
    voice_name: str = "default",
) -> Starlette:
    """The ASGI app. Models given here are used as they are; the others are
    loaded from ``config`` (unless ``config.asr`` / ``config.tts`` is off)."""
    config = config or ServerConfig()
    if (recognizer is None and config.asr) or (synthesizer is None and config.tts):
        loaded = load_models(
            config.replace(
                asr=config.asr and recognizer is None,
                tts=config.tts and synthesizer is None,
            )
        )
        recognizer = recognizer or loaded[0]
        if synthesizer is None and loaded[1] is not None:
            synthesizer, voice_name = loaded[1], loaded[2]
    torch = sys.modules.get("torch")  # loaded with PyTorch models only
    if config.threads and torch is not None:
        if torch.get_num_threads() != config.threads:
            torch.set_num_threads(config.threads)
    hub = Hub(config, recognizer, synthesizer, voice_name)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    routes: list[Any] = [
        Route("/healthz", _healthz),
        Route("/metrics", _metrics),
        Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/v1/audio/speech", speech, methods=["POST"]),
        WebSocketRoute("/asr", AsrEndpoint(hub)),
        WebSocketRoute("/tts", TtsEndpoint(hub)),
    ]
    if config.demo:
        routes += [
            Route("/", _index),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]
    middleware = [Middleware(_RecordTransport)]
    origins = [o for o in config.allowed_origins if o]
    if origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type"],
            )
        )
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.hub = hub
    return app


# ------------------------------------------------------------------ serving


def _ws_implementation() -> str:
    from uvicorn.config import WS_PROTOCOLS

    return "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"


def uvicorn_config(app: Starlette, host: str, port: int) -> Any:
    import uvicorn

    config: ServerConfig = app.state.hub.config
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ws=_ws_implementation(),
        ws_max_size=config.transport_max_bytes,
        ws_per_message_deflate=False,  # compressing audio costs CPU for little
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=config.shutdown_timeout,
    )


def _draining_server(uv_config: Any, hub: Hub) -> Any:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """Drains the sessions (last results, then 1001) before uvicorn
        closes the connections itself; a signal that asked for the graceful
        shutdown is not raised again afterwards (the exit status is 0)."""

        async def shutdown(self, sockets: Any = None) -> None:
            for server in getattr(self, "servers", []):
                server.close()  # no new connections while draining
            await hub.drain()
            await super().shutdown(sockets)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return DrainingServer(uv_config)


class BackgroundServer:
    """Serves an app on 127.0.0.1 (a free port by default) in a thread."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.server: Any = None
        self.thread: threading.Thread | None = None

    @property
    def hub(self) -> Hub:
        return self.app.state.hub  # type: ignore[no-any-return]

    def url(self, path: str = "") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def ws_url(self, path: str) -> str:
        return f"ws://{self.host}:{self.port}{path}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self.server = _draining_server(
            uvicorn_config(self.app, self.host, self.port), self.hub
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout)
            self.thread = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ------------------------------------------------------------------ logging


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, then fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup_logging(fmt: str, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    if not verbose:
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


def run_server(args: Any) -> int:
    """``speech serve``: load, serve until SIGINT/SIGTERM, drain, exit 0."""
    # Idle OpenMP threads sleep instead of spinning: the model workers and the
    # event loop share few cores, and spinning threads starve them (measured
    # on 2 busy cores: 2 threads 3x slower than 1 when spinning, 2x faster
    # when passive). Read by the OpenMP runtime when torch loads, just below.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        config = ServerConfig.from_args(args)
    except ValueError as error:
        print(f"speech serve: {error}", file=sys.stderr)
        return 2
    setup_logging(config.log_format, getattr(args, "verbose", False))
    try:
        app = create_app(config)
    except (OSError, ValueError) as error:
        print(f"speech serve: cannot load the models: {error}", file=sys.stderr)
        return 2
    hub: Hub = app.state.hub
    server = _draining_server(uvicorn_config(app, config.host, config.port), hub)
    logger.info(
        "listening",
        extra={
            "fields": {
                "url": f"http://{config.host}:{config.port}",
                "asr": hub.recognizer is not None,
                "tts": hub.synthesizer is not None,
                "backend": config.backend,
                "max_sessions": config.max_sessions,
            }
        },
    )
    server.run()
    return 0
