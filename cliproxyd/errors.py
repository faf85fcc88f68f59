"""The one error type of cliproxyd.

`ProxyError` is raised anywhere (codecs, router, providers, transport, handlers) and rendered once,
by the handler, through the client format's codec (`formats.<fmt>.render_error`).  This module does
no I/O and imports nothing from Tornado.

Kinds, their default HTTP status and the type string each client format shows:

==================== ====== ======================= ========================= ====================
kind                 status OpenAI ``error.type``    Anthropic ``error.type``  Gemini ``status``
==================== ====== ======================= ========================= ====================
invalid_request      400    invalid_request_error   invalid_request_error     INVALID_ARGUMENT
authentication       401    authentication_error    authentication_error      UNAUTHENTICATED
permission           403    permission_error        permission_error          PERMISSION_DENIED
not_found            404    not_found               not_found_error           NOT_FOUND
model_not_found      404    invalid_request_error   not_found_error           NOT_FOUND
payload_too_large    413    invalid_request_error   request_too_large         INVALID_ARGUMENT
rate_limited         429    rate_limit_error        rate_limit_error          RESOURCE_EXHAUSTED
upstream_error       502    server_error            api_error                 INTERNAL
upstream_timeout     504    server_error            api_error                 DEADLINE_EXCEEDED
upstream_unavailable 503    server_error            overloaded_error          UNAVAILABLE
internal             500    server_error            api_error                 INTERNAL
==================== ====== ======================= ========================= ====================

The status of a particular error may differ from its kind's default (an upstream 500 re-rendered
keeps 500); `type_for_status` and `google_status_for` map a status to the names each format uses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["ErrorKind", "ProxyError", "google_status_for", "anthropic_type_for", "openai_type_for"]


class ErrorKind(enum.Enum):
    """What went wrong, independent of any wire format; the value is the default HTTP status."""

    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    MODEL_NOT_FOUND = "model_not_found"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    INTERNAL = "internal"


_DEFAULT_STATUS = {
    ErrorKind.INVALID_REQUEST: 400,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.PERMISSION: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.MODEL_NOT_FOUND: 404,
    ErrorKind.PAYLOAD_TOO_LARGE: 413,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.UPSTREAM_ERROR: 502,
    ErrorKind.UPSTREAM_TIMEOUT: 504,
    ErrorKind.UPSTREAM_UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}

_OPENAI_TYPE = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found",
    ErrorKind.MODEL_NOT_FOUND: "invalid_request_error",
    ErrorKind.PAYLOAD_TOO_LARGE: "invalid_request_error",
    ErrorKind.RATE_LIMITED: "rate_limit_error",
}

_ANTHROPIC_TYPE = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.MODEL_NOT_FOUND: "not_found_error",
    ErrorKind.PAYLOAD_TOO_LARGE: "request_too_large",
    ErrorKind.RATE_LIMITED: "rate_limit_error",
    ErrorKind.UPSTREAM_UNAVAILABLE: "overloaded_error",
}

# Google's canonical status names (google.rpc.Code) by HTTP status.
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def kind_for_status(status: int) -> ErrorKind:
    """The kind that best describes an HTTP status (used for upstream errors)."""
    for kind in (
        ErrorKind.INVALID_REQUEST,
        ErrorKind.AUTHENTICATION,
        ErrorKind.PERMISSION,
        ErrorKind.NOT_FOUND,
        ErrorKind.PAYLOAD_TOO_LARGE,
        ErrorKind.RATE_LIMITED,
        ErrorKind.UPSTREAM_UNAVAILABLE,
        ErrorKind.UPSTREAM_TIMEOUT,
    ):
        if _DEFAULT_STATUS[kind] == status:
            return kind
    if status == 408:
        return ErrorKind.UPSTREAM_TIMEOUT
    if 400 <= status < 500:
        return ErrorKind.INVALID_REQUEST
    return ErrorKind.UPSTREAM_ERROR


@dataclass(eq=False)
class ProxyError(Exception):
    """An error with a kind, an HTTP status and a message safe to show the client.

    `message` must never contain a secret.  `code` is an optional machine-readable code
    (OpenAI's ``error.code``, e.g. ``model_not_found``); `param` names the offending field;
    `retry_after` (seconds) becomes a ``Retry-After`` header.
    """

    kind: ErrorKind
    message: str
    status: int = 0
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if not self.status:
            self.status = _DEFAULT_STATUS[self.kind]
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return f"{self.kind.value} ({self.status}): {self.message}"


def openai_type_for(err: ProxyError) -> str:
    """OpenAI ``error.type`` for an error."""
    if err.kind in _OPENAI_TYPE:
        return _OPENAI_TYPE[err.kind]
    return "invalid_request_error" if 400 <= err.status < 500 else "server_error"


def anthropic_type_for(err: ProxyError) -> str:
    """Anthropic ``error.type`` for an error (its documented error types)."""
    if err.kind in _ANTHROPIC_TYPE:
        return _ANTHROPIC_TYPE[err.kind]
    if err.status == 529 or err.status == 503:
        return "overloaded_error"
    if err.status == 504:
        return "timeout_error"
    return "invalid_request_error" if 400 <= err.status < 500 else "api_error"


def google_status_for(status: int) -> str:
    """Google's canonical status name for an HTTP status."""
    if status in _GOOGLE_STATUS:
        return _GOOGLE_STATUS[status]
    return "INVALID_ARGUMENT" if 400 <= status < 500 else "INTERNAL"
