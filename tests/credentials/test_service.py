"""Tests for cliproxyd/credentials/service.py: login completion, the refresh pass, backoff,
rescans and change notification, against `fakes.oauth.FakeOAuth` with a controlled clock."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from cliproxyd.config import ClaudeOAuth, CodexOAuth, Config, OAuth
from cliproxyd.credentials.accounts import backoff
from cliproxyd.credentials.oauth import FlowError, format_time
from cliproxyd.credentials.service import OAuthService
from tests.fakes.oauth import CLIENT_IDS, FakeOAuth

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake():
    f = FakeOAuth("claude")
    yield f
    f.stop()


def make(tmp_path, fake) -> tuple[OAuthService, Clock, list]:
    cfg = Config(auth_dir=str(tmp_path / "auth"), oauth=OAuth(
        claude=ClaudeOAuth(authorize_url=f"{fake.url}/authorize", token_url=f"{fake.url}/token",
                           client_id=CLIENT_IDS["claude"], redirect_port=1),
        codex=CodexOAuth()))
    clock = Clock()
    service = OAuthService(lambda: cfg, clock=clock)
    changes: list = []
    service.on_change = changes.append
    return service, clock, changes


def write(tmp_path, name, **data):
    folder = tmp_path / "auth"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(data))


def expired_file(tmp_path, refresh="r0"):
    write(tmp_path, "claude-a@x.json", type="claude", access_token="old", refresh_token=refresh,
          email="a@x", expired=format_time(NOW - 10))


def consent(url: str) -> dict[str, str]:
    resp = requests.get(url, allow_redirects=False, timeout=10)
    return {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}


def test_login_completes_writes_the_file_and_publishes(tmp_path, fake):
    service, clock, changes = make(tmp_path, fake)
    flow, url = service.begin("anthropic")
    assert flow.redirect_uri == "http://localhost:1/callback"
    back = consent(url)
    done = asyncio.run(service.complete(back["state"], back["code"], "", "claude"))
    assert done.status == "ok" and done.file_name == "claude-alice@example.com.json"
    assert service.flows.status(flow.state, clock.now) == ("ok", "")
    (snap,) = changes
    assert [a.access_token for a in snap] == [fake.access_tokens[-1]]


def test_login_keeps_the_files_own_settings_on_relogin(tmp_path, fake):
    write(tmp_path, "claude-alice@example.com.json", type="claude", access_token="old",
          email="alice@example.com", prefix="team", priority=2)
    service, _, _ = make(tmp_path, fake)
    _, url = service.begin("claude")
    back = consent(url)
    asyncio.run(service.complete(back["state"], back["code"], ""))
    saved = json.loads((tmp_path / "auth" / "claude-alice@example.com.json").read_text())
    assert saved["prefix"] == "team" and saved["priority"] == 2
    assert saved["access_token"] == fake.access_tokens[-1]


def test_failed_exchange_marks_the_flow_and_writes_nothing(tmp_path, fake):
    service, clock, changes = make(tmp_path, fake)
    fake.state.mode = "500"
    flow, url = service.begin("claude")
    back = consent(url)
    with pytest.raises(FlowError) as info:
        asyncio.run(service.complete(back["state"], back["code"], ""))
    assert info.value.status == 502
    assert service.flows.status(flow.state, clock.now) == ("error", "token endpoint returned HTTP 500")
    assert not (tmp_path / "auth").exists() and changes == []


def test_forged_state_makes_no_token_request(tmp_path, fake):
    service, _, _ = make(tmp_path, fake)
    service.begin("claude")
    with pytest.raises(FlowError) as info:
        asyncio.run(service.complete("b" * 32, "code-1", ""))
    assert info.value.status == 404 and fake.token_requests == []


def test_expired_token_is_refreshed_on_the_first_pass(tmp_path, fake):
    expired_file(tmp_path)
    fake.accept_refresh_token("r0")
    service, _, changes = make(tmp_path, fake)
    (before,) = service.rescan()
    assert before.unavailable.startswith("access token expired")
    asyncio.run(service.refresh_now())
    (after,) = service.snapshot()
    assert after.access_token == fake.access_tokens[-1] and after.unavailable == ""
    assert changes[-1] == (after,)
    saved = json.loads((tmp_path / "auth" / "claude-a@x.json").read_text())
    assert saved["access_token"] == after.access_token and saved["refresh_token"] != "r0"
    asyncio.run(service.refresh_now())  # not due again: no second request
    assert len(fake.token_requests) == 1


def test_refresh_failure_marks_backs_off_and_retries(tmp_path, fake):
    expired_file(tmp_path, refresh="revoked")
    service, clock, _ = make(tmp_path, fake)
    service.rescan()
    asyncio.run(service.refresh_now())
    (acct,) = service.snapshot()
    assert "refresh failed: token endpoint returned HTTP 400: invalid_grant" in acct.unavailable
    assert service.status("claude-a@x.json")["unavailable"] is True
    listed = service.annotate([{"name": "claude-a@x.json", "status": "active"}, {"name": "x"}])
    assert listed[0]["status"] == "error" and "invalid_grant" in listed[0]["status_message"]
    assert listed[1] == {"name": "x"}
    clock.now += backoff(1) - 1
    asyncio.run(service.refresh_now())
    assert len(fake.token_requests) == 1  # still backing off
    fake.accept_refresh_token("revoked")
    clock.now += 1
    asyncio.run(service.refresh_now())
    assert len(fake.token_requests) == 2 and service.snapshot()[0].unavailable == ""


def test_rescan_picks_up_new_changed_and_removed_files(tmp_path, fake):
    service, _, _ = make(tmp_path, fake)
    assert service.rescan() == ()
    write(tmp_path, "claude-b@x.json", type="claude", access_token="t1", email="b@x")
    write(tmp_path, "codex-c@x.json", type="codex", access_token="t2", account_id="acc",
          disabled=True)
    (b,) = service.rescan()
    assert b.name == "claude-b@x.json" and b.access_token == "t1"
    (tmp_path / "auth" / "claude-b@x.json").unlink()
    assert service.rescan() == ()


def test_start_and_stop_run_the_loop(tmp_path, fake):
    expired_file(tmp_path)
    fake.accept_refresh_token("r0")
    service, _, changes = make(tmp_path, fake)
    service.rescan()

    async def run() -> None:
        service.start()
        for _ in range(200):
            if changes:
                break
            await asyncio.sleep(0.05)
        await service.stop()

    asyncio.run(run())
    assert changes and changes[-1][0].access_token == fake.access_tokens[-1]


def test_periodic_pass_rescans_the_auth_dir(tmp_path, fake):
    service, clock, changes = make(tmp_path, fake)
    service.rescan()
    write(tmp_path, "claude-n@x.json", type="claude", access_token="t", email="n@x")
    asyncio.run(service.refresh_now())
    assert service.snapshot() == ()  # not yet: the last scan was just now
    clock.now += 30
    asyncio.run(service.refresh_now())
    assert [a.name for a in service.snapshot()] == ["claude-n@x.json"]
    assert [a.name for a in changes[-1]] == ["claude-n@x.json"]


def test_callback_without_code_or_with_provider_error_fails_the_flow(tmp_path, fake):
    service, clock, _ = make(tmp_path, fake)
    flow, _ = service.begin("claude")
    with pytest.raises(FlowError) as info:
        asyncio.run(service.complete(flow.state, "", ""))
    assert info.value.status == 400
    assert service.flows.status(flow.state, clock.now) == ("error", "the callback carried no code")
    other, _ = service.begin("claude")
    with pytest.raises(FlowError):
        asyncio.run(service.complete(other.state, "", "access_denied"))
    status, message = service.flows.status(other.state, clock.now)
    assert status == "error" and "access_denied" in message
    assert fake.token_requests == []


def test_refresh_does_not_resurrect_a_deleted_file(tmp_path):
    from cliproxyd.credentials.service import _write_back

    folder = tmp_path / "auth"
    assert _write_back(str(folder), "claude-gone.json", {"type": "claude"}) is None
    assert not folder.exists()
    write(tmp_path, "claude-here.json", type="claude", access_token="old")
    record = _write_back(str(folder), "claude-here.json", {"type": "claude", "access_token": "new"})
    assert record is not None and record.data["access_token"] == "new"
