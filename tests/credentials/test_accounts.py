"""Tests for cliproxyd/credentials/accounts.py (what an auth file means at a given time)."""

from __future__ import annotations

from cliproxyd.credentials.accounts import BACKOFF_CAP, AccountState, backoff, expiry
from cliproxyd.credentials.oauth import format_time
from cliproxyd.credentials.store import AuthRecord

NOW = 1_800_000_000.0
HOUR = 3600.0


def state(**data) -> AccountState:
    base = {"type": "claude", "access_token": "at", "refresh_token": "rt", "email": "a@x"}
    base.update(data)
    return AccountState(AuthRecord("claude-a@x.json", base, 1))


def test_expiry_spellings():
    assert expiry({"expired": format_time(NOW)}) == NOW
    assert expiry({"expiresAt": NOW * 1000}) == NOW
    assert expiry({"token": {"expiry": format_time(NOW)}}) == NOW
    assert expiry({"email": "x"}) is None


def test_view_honours_per_file_settings():
    view = state(prefix="/team/", priority=3, proxy_url="socks5://h:1", headers={"X-A": "1"},
                 excluded_models=["Claude-Opus-*"], account_id="acc").view(NOW)
    assert view.name == "claude-a@x.json" and view.kind == "claude" and view.access_token == "at"
    assert view.prefix == "team" and view.priority == 3 and view.proxy_url == "socks5://h:1"
    assert dict(view.headers) == {"X-A": "1"} and view.excluded_models == ("claude-opus-*",)
    assert view.unavailable == ""
    assert state(**{"excluded-models": ["x"]}).view(NOW).excluded_models == ("x",)


def test_disabled_unsupported_and_corrupt_files_are_not_accounts():
    assert state(disabled=True).view(NOW) is None
    assert state(type="gemini").view(NOW) is None
    assert AccountState(AuthRecord("bad.json", {}, 1, "not JSON")).view(NOW) is None


def test_expired_token_is_unavailable_with_its_reason():
    s = state(expired=format_time(NOW - 1))
    assert "expired" in s.view(NOW).unavailable and "refreshing" in s.view(NOW).unavailable
    s.failed("token endpoint returned HTTP 400: invalid_grant", NOW)
    assert "refresh failed: token endpoint returned HTTP 400: invalid_grant" in s.view(NOW).unavailable
    assert state(expired=format_time(NOW + 1)).view(NOW).unavailable == ""
    assert "no access_token" in state(access_token="").view(NOW).unavailable


def test_refresh_is_due_at_expiry_minus_lead_and_backs_off():
    s = state(expired=format_time(NOW + 4 * HOUR + 10))
    assert not s.due(NOW) and s.due(NOW + 10)
    s.failed("boom", NOW + 10)
    assert s.failures == 1 and not s.due(NOW + 11) and s.due(NOW + 10 + backoff(1))
    s.refreshing = True
    assert not s.due(NOW + 10 + BACKOFF_CAP)


def test_no_refresh_token_or_disabled_never_refreshes():
    assert state(refresh_token="", expired=format_time(NOW - 1)).due_at() is None
    assert state(disabled=True, expired=format_time(NOW - 1)).due_at() is None


def test_codex_lead_and_refresh_interval_override():
    s = state(type="codex", expired=format_time(NOW + 5 * 86400 + 1))
    assert not s.due(NOW) and s.due(NOW + 1)
    s = state(refresh_interval_seconds=60, last_refresh=format_time(NOW),
              expired=format_time(NOW + 30 * 86400))
    assert s.due_at() == NOW + 60


def test_backoff_doubles_and_is_capped():
    assert [backoff(n) for n in (1, 2, 3)] == [30.0, 60.0, 120.0]
    assert backoff(50) == BACKOFF_CAP


def test_status_for_listings_never_shows_tokens():
    s = state(expired=format_time(NOW - 1))
    s.failed("HTTP 400", NOW)
    status = s.status(NOW)
    assert status == {"unavailable": True,
                      "status_message": "access token expired; refresh failed: HTTP 400"}
    assert state().status(NOW) == {"unavailable": False, "status_message": ""}
