"""Server-sent events: an incremental parser and a serializer (h11-shaped, no I/O).

(Parser to be completed by the codecs work; `Event` is the shared value type.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One SSE event: ``data`` is the joined data lines; ``event`` the type (None = "message")."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None
