"""Checking and hashing the management secret (plaintext or bcrypt, as CLIProxyAPI writes it).

`verify_secret(presented, configured)` compares in constant time for a plaintext secret and with
bcrypt for a ``$2a$``/``$2b$``/``$2y$`` hash.  A bcrypt check costs tens of milliseconds by
design: call it from an executor, not on the IOLoop (DESIGN.md "Nothing blocks the loop").
This module does no I/O and never logs.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import bcrypt

__all__ = ["BCRYPT_RE", "hash_secret", "is_bcrypt_hash", "verify_secret"]

# Modular crypt format: $2x$<cost>$<22-char salt><31-char hash>, bcrypt's own base64 alphabet.
BCRYPT_RE = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
_BCRYPT_MAX_BYTES = 72  # bcrypt ignores (bcrypt>=5: refuses) anything longer


def is_bcrypt_hash(value: str) -> bool:
    """True when `value` is a well-formed bcrypt hash."""
    return BCRYPT_RE.fullmatch(value) is not None


def looks_like_bcrypt(value: str) -> bool:
    """True when `value` starts like a bcrypt hash (well-formed or not)."""
    return value.startswith(_BCRYPT_PREFIXES)


def verify_secret(presented: str, configured: str) -> bool:
    """True when `presented` matches `configured` (plaintext or bcrypt hash); "" never matches."""
    if not configured or not presented:
        return False
    if looks_like_bcrypt(configured):
        return _check_bcrypt(presented, configured)
    # Digests first, so neither the content nor the length of the secret leaks through timing.
    return hmac.compare_digest(_digest(presented), _digest(configured))


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def _check_bcrypt(presented: str, hashed: str) -> bool:
    """bcrypt check; $2y$ (PHP's name for the fixed algorithm) is $2b$ to the library."""
    if not is_bcrypt_hash(hashed):
        return False
    if hashed.startswith("$2y$"):
        hashed = "$2b$" + hashed[4:]
    secret = presented.encode("utf-8")
    if len(secret) > _BCRYPT_MAX_BYTES:
        return False
    try:
        return bcrypt.checkpw(secret, hashed.encode("ascii"))
    except ValueError:
        return False


def hash_secret(secret: str) -> str:
    """A $2b$ bcrypt hash of `secret`, usable as `remote-management.secret-key`."""
    data = secret.encode("utf-8")
    if not data:
        raise ValueError("the secret is empty")
    if len(data) > _BCRYPT_MAX_BYTES:
        raise ValueError(f"bcrypt uses at most {_BCRYPT_MAX_BYTES} bytes; the secret is longer")
    return bcrypt.hashpw(data, bcrypt.gensalt()).decode("ascii")
