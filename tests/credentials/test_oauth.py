"""Tests for cliproxyd/credentials/oauth.py (pure OAuth mechanics)."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from cliproxyd.config import Config
from cliproxyd.credentials import claude, codex
from cliproxyd.credentials.oauth import (
    FLOW_TTL,
    FlowError,
    Flows,
    TokenError,
    TokenRequest,
    authorize_url,
    challenge_s256,
    format_time,
    jwt_claims,
    new_state,
    new_verifier,
    parse_callback_url,
    parse_time,
    parse_token_json,
    redirect_uri,
    refresh_due_at,
    safe_name_part,
    valid_state,
    with_query,
)

NOW = 1_800_000_000.0


def test_pkce_verifier_is_96_random_bytes_and_challenge_is_s256():
    verifier = new_verifier()
    assert len(verifier) == 128 and "=" not in verifier
    assert len(base64.urlsafe_b64decode(verifier + "==")) == 96
    assert new_verifier() != verifier
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge_s256(verifier) == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    # RFC 7636 appendix B test vector
    assert challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == \
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_state_is_32_hex_and_validation_refuses_path_tricks():
    state = new_state()
    assert len(state) == 32 and int(state, 16) >= 0
    assert valid_state(state) and valid_state("gem-123_a.b")
    for bad in ("", "a/b", "a\\b", "..", "a..b", "x" * 129, "a b", None, 5):
        assert not valid_state(bad), bad


@pytest.mark.parametrize("module", [claude, codex])
def test_authorize_url_carries_everything_users_rely_on(module):
    endpoints = getattr(Config().oauth, module.SPEC.name)
    flows = Flows()
    flow = flows.start(module.SPEC.name, redirect_uri(module.SPEC, endpoints.redirect_port), NOW)
    url = authorize_url(module.SPEC, endpoints, flow)
    parts = urlsplit(url)
    assert url.startswith(endpoints.authorize_url + "?")
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["response_type"] == "code" and q["client_id"] == endpoints.client_id
    assert q["redirect_uri"] == flow.redirect_uri and q["state"] == flow.state
    assert q["code_challenge"] == challenge_s256(flow.verifier)
    assert q["code_challenge_method"] == "S256" and q["scope"] == module.SPEC.scope
    for key, value in module.SPEC.authorize_extra.items():
        assert q[key] == value


def test_redirect_uris_are_the_registered_ones():
    cfg = Config().oauth
    assert redirect_uri(claude.SPEC, cfg.claude.redirect_port) == "http://localhost:54545/callback"
    assert redirect_uri(codex.SPEC, cfg.codex.redirect_port) == "http://localhost:1455/auth/callback"


def test_with_query_keeps_existing_parameters():
    assert with_query("https://x/a?b=1", {"c": "2 3"}) == "https://x/a?b=1&c=2+3"


def test_parse_callback_url_reads_query_fragment_and_error_description():
    assert parse_callback_url("http://localhost:1455/auth/callback?code=c&state=s") == \
        {"code": "c", "state": "s", "error": ""}
    assert parse_callback_url("http://x/cb#code=c&state=s")["code"] == "c"
    assert parse_callback_url("http://x/cb?error_description=nope&state=s")["error"] == "nope"
    with pytest.raises(FlowError) as info:
        parse_callback_url("not a url")
    assert info.value.status == 400


# -- flows -----------------------------------------------------------------------------------


def test_flow_wait_then_ok_then_expires():
    flows = Flows()
    flow = flows.start("claude", "http://localhost:1/callback", NOW)
    assert flows.status(flow.state, NOW) == ("wait", "")
    claimed = flows.claim(flow.state, "claude", NOW + 1)
    assert claimed is flow and flows.status(flow.state, NOW + 1) == ("wait", "")
    flows.succeed(flow, "claude-a.json", NOW + 2)
    assert flows.status(flow.state, NOW + 2) == ("ok", "")
    assert flows.status(flow.state, NOW + 2 + FLOW_TTL) == ("error", "unknown or expired state")


def test_pending_flow_expires_after_ten_minutes():
    flows = Flows()
    flow = flows.start("codex", "u", NOW)
    assert flows.pending("codex", NOW + FLOW_TTL - 1) and not flows.pending("claude", NOW)
    with pytest.raises(FlowError) as info:
        flows.claim(flow.state, "codex", NOW + FLOW_TTL)
    assert info.value.status == 404 and not flows.pending("codex", NOW + FLOW_TTL)
    assert flows.status(flow.state, NOW + FLOW_TTL) == ("error", "Timeout waiting for OAuth callback")
    assert flows.status(flow.state, NOW + 2 * FLOW_TTL) == ("error", "unknown or expired state")


def test_never_issued_state_is_an_error_never_ok():
    flows = Flows()
    assert flows.status("f" * 32, NOW) == ("error", "unknown or expired state")
    for bad, status in (("", 400), ("../x", 400)):
        with pytest.raises(FlowError) as info:
            flows.status(bad, NOW)
        assert info.value.status == status


def test_claim_refuses_replays_wrong_provider_and_bad_states():
    flows = Flows()
    flow = flows.start("claude", "u", NOW)
    with pytest.raises(FlowError) as info:
        flows.claim(flow.state, "codex", NOW)
    assert info.value.status == 400 and flow.status == "wait"
    flows.claim(flow.state, "claude", NOW)
    with pytest.raises(FlowError) as info:
        flows.claim(flow.state, "claude", NOW)
    assert info.value.status == 409
    with pytest.raises(FlowError) as info:
        flows.claim("a/b", None, NOW)
    assert info.value.status == 400


def test_failed_flow_keeps_its_error_and_renews_expiry():
    flows = Flows()
    flow = flows.start("claude", "u", NOW)
    flows.claim(flow.state, None, NOW)
    flows.fail(flow, "boom", NOW + FLOW_TTL - 1)
    assert flows.status(flow.state, NOW + FLOW_TTL + 5) == ("error", "boom")


# -- token requests and answers --------------------------------------------------------------


def test_token_request_encodes_json_or_form():
    body, ctype = TokenRequest("u", {"a": "1", "b": "x y"}, as_json=True).encoded()
    assert ctype == "application/json" and json.loads(body) == {"a": "1", "b": "x y"}
    body, ctype = TokenRequest("u", {"a": "1", "b": "x y"}).encoded()
    assert ctype == "application/x-www-form-urlencoded" and body == b"a=1&b=x+y"
    assert "fields" not in repr(TokenRequest("u", {"refresh_token": "secret"}))


def test_parse_token_json_accepts_only_real_token_answers():
    assert parse_token_json(200, b'{"access_token":"t"}') == {"access_token": "t"}
    cases = [
        (200, b"<html>", "not a JSON object"),
        (200, b"[1]", "not a JSON object"),
        (200, b'{"token_type":"Bearer"}', "no access_token"),
        (200, b'{"access_token":"  "}', "no access_token"),
        (400, b'{"error":"invalid_grant","error_description":"revoked"}',
         "HTTP 400: invalid_grant - revoked"),
        (401, b'{"type":"error","error":{"type":"authentication_error"}}',
         "HTTP 401: authentication_error"),
        (500, b"", "HTTP 500"),
    ]
    for status, body, message in cases:
        with pytest.raises(TokenError) as info:
            parse_token_json(status, body)
        assert message in str(info.value)


def test_jwt_claims_read_the_payload_and_tolerate_junk():
    payload = base64.urlsafe_b64encode(json.dumps({"email": "a@b"}).encode()).rstrip(b"=").decode()
    assert jwt_claims(f"h.{payload}.s") == {"email": "a@b"}
    for junk in ("", "a.b", "a.!!!.c", "a.bnVsbA.c", None):
        assert jwt_claims(junk) == {}


# -- times -----------------------------------------------------------------------------------


def test_times_round_trip_and_go_formats_parse():
    text = format_time(NOW)
    assert "T" in text and (text.endswith("Z") or text[-6] in "+-")
    assert parse_time(text) == NOW
    assert parse_time("2026-01-02T03:04:05.123456789+08:00") == pytest.approx(1767294245.123456)
    assert parse_time("2026-01-02T03:04:05Z") == 1767323045.0
    assert parse_time(1767323045) == 1767323045.0
    assert parse_time(1767323045000) == 1767323045.0  # milliseconds
    for junk in ("", "tomorrow", None, True, {}):
        assert parse_time(junk) is None


def test_refresh_due_uses_lead_interval_or_last_refresh():
    assert refresh_due_at(NOW, None, 100.0) == NOW - 100.0
    assert refresh_due_at(None, NOW, 100.0) == NOW + 100.0
    assert refresh_due_at(NOW, NOW - 50, 100.0, interval=10.0) == NOW - 40
    assert refresh_due_at(None, None, 100.0) is None


def test_safe_name_part_keeps_emails_and_drops_path_tricks():
    assert safe_name_part("alice+x@example.com") == "alice+x@example.com"
    assert "/" not in safe_name_part("../../etc/passwd") and ".." not in safe_name_part("a..b")
