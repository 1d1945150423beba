"""The real-time speech server: streaming ASR and TTS over WebSockets,
OpenAI-compatible HTTP endpoints, a browser demo, metrics and health.

``speech serve`` runs it (``server.app.run_server``); ``server.app.create_app``
builds the ASGI app for tests and embedding; ``server.client`` speaks the
WebSocket protocol documented in ``server/PROTOCOL.md`` (and imports neither
the server nor the models).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BackgroundServer", "ServerConfig", "create_app", "run_server"]


def __getattr__(name: str) -> Any:
    if name in ("BackgroundServer", "create_app", "run_server"):
        from server import app

        return getattr(app, name)
    if name == "ServerConfig":
        from server.config import ServerConfig

        return ServerConfig
    raise AttributeError(name)
