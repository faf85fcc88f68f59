"""The auth-dir files of OAuth accounts: scanning them and writing them back.

A file is an account when it is a regular ``*.json`` file directly in ``auth-dir`` (a name
`management.files.check_name` accepts; links are never followed) holding a JSON object with a
``type``.  Its id is its file name (the path relative to auth-dir, as in the original).  A corrupt
file becomes a record with a ``problem`` and no data, so one bad file never hides the others.

Writes go through `management.files.write_auth_file`: atomic (temp file, fsync, rename), mode
0600, folder 0700.  Keys starting with ``_`` are in-memory only and never written.

Every function here blocks (file I/O): call them from an executor.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from cliproxyd.management import files

__all__ = ["AuthRecord", "read", "scan", "write"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuthRecord:
    """One auth file as read: ``data`` is its JSON object ({} with a ``problem``)."""

    name: str
    data: dict[str, Any] = field(repr=False)
    mtime_ns: int = 0
    problem: str = ""

    @property
    def kind(self) -> str:
        value = self.data.get("type")
        return value.strip().lower() if isinstance(value, str) else ""


def _read(auth_dir: str, name: str) -> AuthRecord | None:
    path = os.path.join(auth_dir, name)
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return None
        raw = files.read_auth_file(auth_dir, name)
    except (files.AuthFileError, OSError):
        return None  # gone meanwhile, a link, or unreadable: not an account
    try:
        data = files.parse_auth_json(raw)
    except files.AuthFileError as err:
        return AuthRecord(name, {}, st.st_mtime_ns, err.message)
    return AuthRecord(name, data, st.st_mtime_ns)


def scan(auth_dir: str) -> list[AuthRecord]:
    """Every auth file in ``auth_dir`` (sorted by name); a missing folder has none."""
    try:
        names = sorted(os.listdir(auth_dir))
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.error("cannot read auth-dir %s: %s", auth_dir, exc.strerror or exc)
        return []
    out = []
    for name in names:
        try:
            files.check_name(name)
        except files.AuthFileError:
            continue
        record = _read(auth_dir, name)
        if record is not None:
            out.append(record)
    return out


def read(auth_dir: str, name: str) -> AuthRecord | None:
    """One auth file by name (None when absent, a link or not a valid name)."""
    try:
        files.check_name(name)
    except files.AuthFileError:
        return None
    return _read(auth_dir, name)


def write(auth_dir: str, name: str, data: dict[str, Any]) -> None:
    """Write one account file atomically (0600, folder 0700); ``_`` keys are left out."""
    files.write_auth_file(auth_dir, name, {k: v for k, v in data.items() if not k.startswith("_")})
