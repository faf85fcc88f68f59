"""The management API under ``/v0/management``.

Every handler here has ``access = "management"``: `BaseHandler.prepare` applies the contract's
rules (404 without a secret, 403 for a remote peer unless ``allow-remote``, lockout, 401
``invalid password``) before any of this code runs.  Errors use the contract's plain shape.
This issue implements the access layer and ``GET /config``; the rest of the API comes later.
"""

from __future__ import annotations

from cliproxyd.config import effective_config_json
from cliproxyd.handlers.base import BaseHandler

__all__ = ["ConfigHandler", "ManagementHandler"]


class ManagementHandler(BaseHandler):
    """Base of every management handler: the management secret guards it."""

    access = "management"
    client_format = None


class ConfigHandler(ManagementHandler):
    """``GET /v0/management/config``: the effective config, including ``api-keys``, without the
    management secret."""

    def get(self) -> None:
        self.write_json(effective_config_json(self.runtime.config))
