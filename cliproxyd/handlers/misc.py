"""The small routes: ``GET /`` (what this server is), ``GET /healthz`` and ``GET /metrics``."""

from __future__ import annotations

from cliproxyd import __version__
from cliproxyd.handlers.base import BaseHandler
from cliproxyd.metrics import CONTENT_TYPE_LATEST

__all__ = ["ENDPOINTS", "HealthHandler", "MetricsHandler", "RootHandler"]

# The main endpoints advertised by GET / (kept in step with app.py's route table).
ENDPOINTS = (
    "POST /v1/chat/completions",
    "POST /v1/responses",
    "POST /v1/messages",
    "GET /v1/models",
    "POST /v1beta/models/{model}:generateContent",
    "POST /v1beta/models/{model}:streamGenerateContent",
    "GET /healthz",
    "GET /metrics",
)


class RootHandler(BaseHandler):
    """``GET /``: name, version and the main endpoints."""

    def get(self) -> None:
        self.write_json({"name": "cliproxyd", "version": __version__, "endpoints": list(ENDPOINTS)})


class HealthHandler(BaseHandler):
    """``GET /healthz`` → ``{"status":"ok"}`` (``HEAD`` answers 200 without a body)."""

    def get(self) -> None:
        self.write_json({"status": "ok"})

    def head(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish()


class MetricsHandler(BaseHandler):
    """``GET /metrics``: Prometheus text; with ``metrics.require-auth`` it takes the management
    secret under the management rules (issue 5)."""

    def access_mode(self) -> str:
        return "management" if self.runtime.config.metrics.require_auth else "public"

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.state.metrics.exposition())
