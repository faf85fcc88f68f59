"""Usage statistics end to end (issue 5): real proxied requests through the Anthropic SDK against
the fake Claude upstream, counted with the upstream's own token numbers, kept across a restart,
exported and imported into a fresh daemon (dedup), switched off and on live."""

from __future__ import annotations

import time

import anthropic
import pytest

from tests.fakes.upstreams import start_fake

KEY = "client-key-usage-0001"
SECRET = "usage-mgmt-secret"
MGMT = {"Authorization": f"Bearer {SECRET}"}
MODEL = "claude-usage-1"


@pytest.fixture(scope="module")
def fake():
    upstream = start_fake("claude")
    yield upstream
    upstream.stop()


def config(fake, **extra) -> dict:
    base = {"api-keys": [KEY], "remote-management": {"secret-key": SECRET},
            "claude-api-key": [{"api-key": "sk-ant-usage-0001", "base-url": fake.base_url,
                                "models": [{"name": MODEL}]}]}
    base.update(extra)
    return base


def client(d) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=d.url, api_key=KEY, max_retries=0)


def ask(c: anthropic.Anthropic, text: str = "hello") -> tuple[int, int]:
    msg = c.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": text}])
    return msg.usage.input_tokens, msg.usage.output_tokens


def ask_stream(c: anthropic.Anthropic) -> tuple[int, int]:
    with c.messages.stream(model=MODEL, max_tokens=50,
                           messages=[{"role": "user", "content": "stream please"}]) as stream:
        msg = stream.get_final_message()
    return msg.usage.input_tokens, msg.usage.output_tokens


def usage(d) -> dict:
    resp = d.request("GET", "/v0/management/usage", headers=MGMT)
    assert resp.status == 200
    return resp.json()


def test_usage_counts_real_requests_and_survives_a_restart(daemon, fake):
    d = daemon(config(fake))
    c = client(d)
    counts = [ask(c), ask(c, "a longer question for the fake"), ask_stream(c)]
    with pytest.raises(anthropic.NotFoundError):
        c.messages.create(model="no-such-model", max_tokens=5,
                          messages=[{"role": "user", "content": "x"}])
    body = usage(d)
    u = body["usage"]
    tokens = sum(i + o for i, o in counts)
    assert (u["total_requests"], u["success_count"], u["failure_count"]) == (4, 3, 1)
    assert body["failed_requests"] == 1
    assert u["total_tokens"] == tokens
    model = u["apis"][KEY]["models"][MODEL]
    assert model["total_requests"] == 3 and model["total_tokens"] == tokens
    seen = sorted((x["tokens"]["input_tokens"], x["tokens"]["output_tokens"]) for x in model["details"])
    assert seen == sorted(counts)
    assert all(x["failed"] is False and x["source"].endswith("0001") for x in model["details"])
    assert all(len(x["auth_index"]) == 16 for x in model["details"])
    failed = u["apis"][KEY]["models"]["no-such-model"]["details"]
    assert len(failed) == 1 and failed[0]["failed"] is True
    assert sum(u["requests_by_day"].values()) == 4 and sum(u["tokens_by_hour"].values()) == tokens
    assert "sk-ant-usage-0001" not in str(body)  # the upstream key is never a source

    d.stop()
    d.start()
    assert usage(d) == body


def test_export_then_import_into_a_fresh_daemon_dedups(daemon, fake):
    first = daemon(config(fake), name="source")
    c = client(first)
    ask(c)
    ask_stream(c)
    exported = first.request("GET", "/v0/management/usage/export", headers=MGMT).json()
    assert exported["version"] == 1 and exported["exported_at"].endswith("Z")

    second = daemon(config(fake), name="target")
    resp = second.request("POST", "/v0/management/usage/import", headers=MGMT, json_body=exported)
    assert resp.status == 200
    assert resp.json() == {"added": 2, "skipped": 0, "total_requests": 2, "failed_requests": 0}
    again = second.request("POST", "/v0/management/usage/import", headers=MGMT, json_body=exported)
    assert again.json() == {"added": 0, "skipped": 2, "total_requests": 2, "failed_requests": 0}
    assert usage(second)["usage"] == exported["usage"]


@pytest.mark.parametrize("body, message", [
    (b"{nope", "invalid json"),
    (b'{"version": 7, "usage": {}}', "unsupported version"),
    (b'{"version": 1, "usage": {"apis": {"k": {"models": {"m": {"details": [{"timestamp": 5}]}}}}}}',
     "usage.apis.k.models.m.details[0].timestamp must be a string"),
])
def test_import_rejects_bad_bodies(daemon, fake, body, message):
    d = daemon(config(fake))
    resp = d.request("POST", "/v0/management/usage/import", headers=MGMT, body=body)
    assert resp.status == 400
    assert resp.json()["error"]["message"] == message
    assert usage(d)["usage"]["total_requests"] == 0


def test_statistics_switch_applies_live(daemon, fake):
    d = daemon(config(fake))
    c = client(d)
    off = d.request("PUT", "/v0/management/usage-statistics-enabled", headers=MGMT,
                    json_body={"value": False})
    assert off.status == 200
    assert d.request("GET", "/v0/management/usage-statistics-enabled",
                     headers=MGMT).json() == {"usage-statistics-enabled": False}
    ask(c)
    assert usage(d)["usage"]["total_requests"] == 0  # nothing recorded while off
    d.request("PATCH", "/v0/management/usage-statistics-enabled", headers=MGMT,
              json_body={"value": True})
    ask(c)
    assert usage(d)["usage"]["total_requests"] == 1


def test_open_mode_groups_by_method_and_route(daemon, fake):
    d = daemon(config(fake, **{"api-keys": []}))
    ask(anthropic.Anthropic(base_url=d.url, api_key="anything", max_retries=0))
    assert list(usage(d)["usage"]["apis"]) == ["POST /v1/messages"]


def test_usage_db_setting_places_the_database(daemon, fake, tmp_path):
    db = tmp_path / "elsewhere" / "stats.sqlite"
    d = daemon(config(fake, **{"usage-db": str(db)}))
    ask(client(d))
    assert usage(d)["usage"]["total_requests"] == 1
    assert db.exists() and oct(db.stat().st_mode & 0o777) == "0o600"


def test_sigterm_flushes_queued_records(daemon, fake):
    d = daemon(config(fake))
    ask(client(d))
    d.stop()  # straight after the request: the shutdown step commits the queue
    d.start()
    assert usage(d)["usage"]["total_requests"] == 1


def test_a_crash_loses_at_most_the_last_second(daemon, fake):
    d = daemon(config(fake))
    ask(client(d))
    time.sleep(2.0)  # the bound is one second; wait twice that before the crash
    d.kill()  # SIGKILL: no shutdown step runs
    d.start()
    assert usage(d)["usage"]["total_requests"] == 1


def test_an_unusable_database_is_a_clear_500(daemon, fake, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    d = daemon(config(fake, **{"usage-db": str(blocker / "usage.sqlite")}))
    ask(client(d))  # the request itself is served; its record is dropped (and logged)
    resp = d.request("GET", "/v0/management/usage", headers=MGMT)
    assert resp.status == 500
    assert resp.json()["error"]["code"] == "usage_unavailable"
