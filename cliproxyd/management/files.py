"""State files the management API writes: atomic writes and the auth-dir's credential files.

`atomic_write` is DESIGN.md principle 6: a temporary file in the same folder, fsync, mode 0600,
rename over the target, fsync the folder.  A crash leaves the old file or the new one, never a
mix.

Auth files are plain ``*.json`` names directly in ``auth-dir`` (`check_name`: no separators, no
``..``, no leading dot, no control characters); they are opened with ``O_NOFOLLOW`` so a link
planted in the folder is never followed, and only regular files are listed.  The folder is
created (and kept) at mode 0700.  `describe` reports a file without its token values.

These functions block (file I/O): handlers call them from an executor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import stat
import tempfile
from typing import Any

__all__ = [
    "MAX_AUTH_FILE_BYTES", "AuthFileError", "atomic_write", "check_name", "delete_auth_file",
    "describe", "ensure_auth_dir", "list_auth_files", "parse_auth_json", "read_auth_file",
    "write_auth_file",
]

MAX_AUTH_FILE_BYTES = 1024 * 1024
_NAME = re.compile(r"[A-Za-z0-9@+=,_-][A-Za-z0-9@+=,._-]{0,200}\.json")


class AuthFileError(Exception):
    """A request about an auth file that cannot be served; ``status`` 400, 404 or 413."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically (same-folder temp file, fsync, rename)."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def check_name(name: str | None) -> str:
    """``name`` if it is a plain ``*.json`` file name, else `AuthFileError` 400."""
    if not name or "/" in name or "\\" in name or "\0" in name:
        raise AuthFileError(400, "invalid name")
    if not name.endswith(".json"):
        raise AuthFileError(400, "name must end with .json")
    if ".." in name or not _NAME.fullmatch(name):
        raise AuthFileError(400, "invalid name")
    return name


def ensure_auth_dir(auth_dir: str) -> None:
    """Create ``auth_dir`` with mode 0700 (and tighten an existing one to 0700)."""
    os.makedirs(auth_dir, mode=0o700, exist_ok=True)
    if stat.S_IMODE(os.stat(auth_dir).st_mode) != 0o700:
        os.chmod(auth_dir, 0o700)


def _open_nofollow(path: str) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise AuthFileError(404, "auth file not found") from None
    except OSError:  # ELOOP: a symbolic link, never followed
        raise AuthFileError(404, "auth file not found") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise AuthFileError(404, "auth file not found")
    return fd


def read_auth_file(auth_dir: str, name: str) -> bytes:
    """The file's bytes (a link or a non-regular file is "not found")."""
    fd = _open_nofollow(os.path.join(auth_dir, check_name(name)))
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def parse_auth_json(data: bytes) -> dict:
    """The file's JSON object, or `AuthFileError` 400/413."""
    if len(data) > MAX_AUTH_FILE_BYTES:
        raise AuthFileError(413, f"auth file is larger than {MAX_AUTH_FILE_BYTES} bytes")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AuthFileError(400, "invalid auth file: not JSON") from None
    if not isinstance(value, dict):
        raise AuthFileError(400, "invalid auth file: not a JSON object")
    return value


def write_auth_file(auth_dir: str, name: str, value: dict) -> None:
    """Write one auth file atomically with mode 0600."""
    ensure_auth_dir(auth_dir)
    data = json.dumps(value, indent=2).encode() + b"\n"
    atomic_write(os.path.join(auth_dir, check_name(name)), data)


def delete_auth_file(auth_dir: str, name: str) -> None:
    """Remove one auth file (a link is removed itself, never its target)."""
    path = os.path.join(auth_dir, check_name(name))
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise AuthFileError(404, "auth file not found") from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise AuthFileError(404, "auth file not found")
    os.unlink(path)


def list_auth_files(auth_dir: str) -> list[dict[str, Any]]:
    """`describe` of every regular ``*.json`` file, sorted by name (case-insensitive)."""
    try:
        names = os.listdir(auth_dir)
    except FileNotFoundError:
        return []
    out = []
    for name in sorted(names, key=str.lower):
        try:
            check_name(name)
            out.append(describe(auth_dir, name))
        except (AuthFileError, OSError):
            continue  # not an auth file name, a link, or gone meanwhile
    return out


def _rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def describe(auth_dir: str, name: str) -> dict[str, Any]:
    """The list entry of one file: names, type, account, size, times, status; no token values."""
    fd = _open_nofollow(os.path.join(auth_dir, name))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        data = fh.read(MAX_AUTH_FILE_BYTES + 1)
    try:
        value, problem = parse_auth_json(data), ""
    except AuthFileError as err:
        value, problem = {}, err.message
    kind = value.get("type") if isinstance(value.get("type"), str) else "unknown"
    email = value.get("email") if isinstance(value.get("email"), str) else ""
    label = value.get("label") if isinstance(value.get("label"), str) else email
    disabled = value.get("disabled") is True
    status = "error" if problem else "disabled" if disabled else "active"
    entry = {
        "id": name, "name": name, "auth_index": hashlib.sha256(f"file:{name}".encode()).hexdigest()[:16],
        "type": kind, "provider": kind, "label": label, "email": email,
        "status": status, "status_message": problem, "disabled": disabled, "unavailable": bool(problem),
        "runtime_only": False, "source": "file", "size": st.st_size,
        "modtime": _rfc3339(st.st_mtime), "updated_at": _rfc3339(st.st_mtime),
        "account_type": "oauth" if email else "unknown", "account": email,
        "path": os.path.join(auth_dir, name),
    }
    for optional in ("prefix", "priority", "note"):
        if isinstance(value.get(optional), (str, int)) and not isinstance(value.get(optional), bool):
            entry[optional] = value[optional]
    return entry
