"""cliproxyd/providers/base.py and the provider registry: shared parsing helpers and the
interface every provider module implements."""

from __future__ import annotations

import pytest

from cliproxyd.formats import FORMAT_NAMES
from cliproxyd.providers import PROVIDER_KINDS, provider_for
from cliproxyd.providers.base import (
    WireRequest,
    clean_message,
    parse_duration,
    retry_after_header,
)


@pytest.mark.parametrize("text,seconds", [
    ("34s", 34.0), ("1.5s", 1.5), ("57.238747106s", 57.238747106), ("250ms", 0.25),
    ("6m0s", 360.0), ("1h2m3s", 3723.0), ("12", 12.0), (7, 7.0), (2.5, 2.5),
    ("", None), ("soon", None), ("-3", None), (None, None), (True, None), ("5x", None),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_header_forms():
    assert retry_after_header({"retry-after": "12"}) == 12.0
    assert retry_after_header({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_header({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    assert retry_after_header({}) is None


def test_clean_message():
    assert clean_message("  hello ", "fb") == "hello"
    assert clean_message(None, "fb") == "fb" and clean_message({"a": 1}, "fb") == "fb"
    assert "[redacted]" in clean_message("token Bearer abc.def.ghi leaked", "fb")
    assert len(clean_message("y" * 5000, "fb")) == 500


def test_wire_request_repr_hides_auth():
    w = WireRequest("POST", "http://h/x", {"Authorization": "Bearer s3cret", "x-api-key": "s3cret",
                                          "X-Other": "shown"}, b"{}")
    assert "s3cret" not in repr(w) and "shown" in repr(w)


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
def test_every_provider_has_the_interface(kind):
    p = provider_for(kind)
    assert p.kind == kind and p.format in FORMAT_NAMES
    assert p.stream_only is False  # every API-key upstream answers plain requests too
    for name in ("build_request", "count_tokens_request", "classify_error"):
        assert callable(getattr(p, name))


def test_formats_per_kind_and_unknown_kind():
    assert {k: provider_for(k).format for k in PROVIDER_KINDS} == {
        "gemini": "gemini", "claude": "claude", "codex": "openai_responses",
        "openai_compat": "openai_chat"}
    with pytest.raises(KeyError):
        provider_for("vertex")
