"""Tests for cliproxyd/secrets.py: plaintext and bcrypt management secrets."""

from __future__ import annotations

import bcrypt
import pytest

from cliproxyd.secrets import hash_secret, is_bcrypt_hash, verify_secret


def test_plaintext():
    assert verify_secret("s3cret", "s3cret")
    assert not verify_secret("s3cret ", "s3cret")
    assert not verify_secret("S3cret", "s3cret")
    assert verify_secret("pässwört", "pässwört")  # non-ASCII must not raise


def test_empty_never_matches():
    assert not verify_secret("", "")
    assert not verify_secret("x", "")
    assert not verify_secret("", "x")


def test_hash_secret_round_trip():
    hashed = hash_secret("correct horse")
    assert hashed.startswith("$2b$") and is_bcrypt_hash(hashed)
    assert verify_secret("correct horse", hashed)
    assert not verify_secret("wrong horse", hashed)
    assert hash_secret("correct horse") != hashed  # salted


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_all_bcrypt_prefixes(prefix):
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    variant = prefix + hashed[4:]
    assert verify_secret("pw", variant)
    assert not verify_secret("pw2", variant)


def test_hash_is_not_accepted_as_the_password():
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    assert not verify_secret(hashed, hashed)


def test_malformed_hash_never_matches():
    assert not verify_secret("$2a$10$short", "$2a$10$short")
    assert not verify_secret("pw", "$2b$10$" + "!" * 53)


def test_overlong_secret():
    hashed = bcrypt.hashpw(b"x" * 72, bcrypt.gensalt(rounds=4)).decode()
    assert verify_secret("x" * 72, hashed)
    assert not verify_secret("x" * 73, hashed)  # bcrypt would ignore the tail; we refuse
    with pytest.raises(ValueError):
        hash_secret("x" * 73)
    with pytest.raises(ValueError):
        hash_secret("")
