"""Management config, settings and list endpoints end to end (issue 5): GET/PUT config.yaml
(validated like start-up, atomic, applied live), scalar settings, list edits that keep the
operator's comments, hostile input, and no secret in the logs."""

from __future__ import annotations

import os
import stat

import openai
import pytest
import yaml

from tests.fakes.upstreams import start_fake

KEY = "client-key-mgmt-0001"
SECRET = "mgmt-api-secret-0001"
MGMT = {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture(scope="module")
def fake():
    upstream = start_fake("claude")
    yield upstream
    upstream.stop()


def text_config(d, fake, model: str = "claude-one", extra: str = "") -> str:
    return f"""\
# operator's config (keep this comment)
host: 127.0.0.1
port: {d.port}   # the port
auth-dir: {d.workdir / "auth"}
api-keys:
  - "{KEY}"   # laptop
# upstream keys below
remote-management:
  secret-key: "{SECRET}"
claude-api-key:
  - api-key: "sk-ant-mgmt-0001"
    base-url: "{fake.base_url}"
    models:
      - name: {model}
{extra}"""


@pytest.fixture
def d(daemon, fake):
    made = daemon(start=False)
    made.write_config(text_config(made, fake))
    return made.start()


def chat(d, model: str, key: str = KEY) -> int:
    c = openai.OpenAI(base_url=d.url + "/v1", api_key=key, max_retries=0)
    try:
        c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- config.yaml ---------------------------------------------------------------------------------


def test_get_config_yaml_is_the_file_as_on_disk(d):
    resp = d.request("GET", "/v0/management/config.yaml", headers=MGMT)
    assert resp.status == 200
    assert resp.body == d.config_path.read_bytes()
    assert resp.headers["Content-Type"].startswith("application/yaml")
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-CPA-VERSION"]  # the CLIProxyAPI management UI reads it


def test_get_config_json_never_has_the_secret(d):
    body = d.request("GET", "/v0/management/config", headers=MGMT).json()
    assert body["api-keys"] == [KEY]
    assert SECRET not in str(body)


def test_put_config_yaml_applies_live_and_get_reflects_it(d, fake):
    assert chat(d, "claude-one") == 200
    new = text_config(d, fake, model="claude-two", extra="routing:\n  strategy: fill-first\n")
    resp = d.request("PUT", "/v0/management/config.yaml", headers=MGMT, body=new)
    assert resp.status == 200 and resp.json() == {"ok": True, "changed": ["config"]}
    assert d.config_path.read_text() == new and mode(d.config_path) == 0o600
    assert d.request("GET", "/v0/management/config.yaml", headers=MGMT).body.decode() == new
    assert d.request("GET", "/v0/management/routing/strategy", headers=MGMT).json() == {
        "strategy": "fill-first"}
    assert chat(d, "claude-two") == 200  # routing changed without a restart
    assert chat(d, "claude-one") == 404
    assert "RELOADING=1" in "\n".join(d.notifications)  # the SIGHUP path ran


def test_put_invalid_config_lists_every_problem_and_changes_nothing(d, fake):
    before = d.config_path.read_bytes()
    bad = text_config(d, fake) + "request-retry: 99\ndebugg: true\n"
    resp = d.request("PUT", "/v0/management/config.yaml", headers=MGMT, body=bad)
    assert resp.status == 422
    err = resp.json()["error"]
    assert err["code"] == "invalid_config" and len(err["problems"]) == 2
    assert any("request-retry" in p for p in err["problems"])
    assert any("debugg" in p and "did you mean 'debug'" in p for p in err["problems"])
    assert d.config_path.read_bytes() == before
    assert chat(d, "claude-one") == 200


@pytest.mark.parametrize("body", [
    "port: [unclosed\n",
    "a: !!python/object/apply:os.system ['touch /tmp/cliproxyd-pwned']\n",
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdef", "bcdefg")),
    "a: !custom thing\n",
])
def test_hostile_or_unparsable_yaml_is_400_and_nothing_is_written(d, body):
    before = d.config_path.read_bytes()
    resp = d.request("PUT", "/v0/management/config.yaml", headers=MGMT, body=body)
    assert resp.status == 400 and resp.json()["error"]["code"] == "invalid_yaml"
    assert d.config_path.read_bytes() == before
    assert not os.path.exists("/tmp/cliproxyd-pwned")
    assert [n for n in os.listdir(d.workdir) if n.endswith(".tmp")] == []


def test_oversized_config_is_413(d):
    resp = d.request("PUT", "/v0/management/config.yaml", headers=MGMT,
                     body=b"# " + b"x" * (4 * 1024 * 1024) + b"\n")
    assert resp.status == 413


# -- scalar settings -----------------------------------------------------------------------------


def test_scalar_settings_round_trip(d):
    assert d.request("GET", "/v0/management/debug", headers=MGMT).json() == {"debug": False}
    for path, value, shown in (("debug", True, True), ("request-retry", 1, 1), ("ws-auth", False, False),
                               ("force-model-prefix", True, True), ("routing/strategy", "ff", "fill-first")):
        resp = d.request("PUT", f"/v0/management/{path}", headers=MGMT, json_body={"value": value})
        assert resp.status == 200 and resp.json() == {"status": "ok"}
        key = "strategy" if path == "routing/strategy" else path
        assert d.request("GET", f"/v0/management/{path}", headers=MGMT).json() == {key: shown}
    on_disk = yaml.safe_load(d.config_path.read_text())
    assert on_disk["debug"] is True and on_disk["routing"] == {"strategy": "fill-first"}
    assert "# operator's config (keep this comment)" in d.config_path.read_text()


@pytest.mark.parametrize("path, body, status, message", [
    ("debug", {"value": "yes"}, 400, "debug must be true or false"),
    ("request-retry", {"value": True}, 400, "request-retry must be an integer"),
    ("request-retry", {"value": 99}, 422, "request-retry: must be between 0 and 10"),
    ("routing/strategy", {"value": "random"}, 400, "invalid strategy"),
    ("ws-auth", {"val": True}, 400, "ws-auth"),
    ("ws-auth", [True], 400, "ws-auth"),
])
def test_scalar_errors_name_the_field(d, path, body, status, message):
    before = d.config_path.read_bytes()
    resp = d.request("PATCH", f"/v0/management/{path}", headers=MGMT, json_body=body)
    assert resp.status == status
    assert message in resp.json()["error"]["message"]
    assert d.config_path.read_bytes() == before


# -- lists ---------------------------------------------------------------------------------------


def test_comment_survives_a_patch_of_api_keys_and_the_key_works_at_once(d):
    assert chat(d, "claude-one", key="new-key-0002") == 401
    resp = d.request("PATCH", "/v0/management/api-keys", headers=MGMT,
                     json_body={"old": "absent", "new": "new-key-0002"})
    assert resp.status == 200
    text = d.config_path.read_text()
    for comment in ("# operator's config (keep this comment)", "# the port", "# laptop",
                    "# upstream keys below"):
        assert comment in text
    assert d.request("GET", "/v0/management/api-keys", headers=MGMT).json() == {
        "api-keys": [KEY, "new-key-0002"]}
    assert chat(d, "claude-one", key="new-key-0002") == 200
    d.request("DELETE", "/v0/management/api-keys?value=new-key-0002", headers=MGMT)
    assert chat(d, "claude-one", key="new-key-0002") == 401


def test_provider_key_lists(d, fake):
    path = "/v0/management/claude-api-key"
    resp = d.request("PATCH", path, headers=MGMT, json_body={
        "match": "sk-ant-mgmt-0001", "value": {"prefix": "team-a"}})
    assert resp.status == 200
    assert d.request("GET", path, headers=MGMT).json()["claude-api-key"][0]["prefix"] == "team-a"
    assert chat(d, "team-a/claude-one") == 200
    assert d.request("PATCH", path, headers=MGMT, json_body={
        "match": "missing", "value": {"prefix": "x"}}).status == 404
    resp = d.request("PUT", "/v0/management/openai-compatibility", headers=MGMT, json_body={"items": [
        {"name": "local", "base-url": fake.base_url + "/v1", "models": [{"name": "m-compat"}]}]})
    assert resp.status == 200
    assert d.request("GET", "/v0/management/openai-compatibility",
                     headers=MGMT).json()["openai-compatibility"][0]["name"] == "local"
    assert d.request("DELETE", path + "?api-key=sk-ant-mgmt-0001", headers=MGMT).status == 200
    assert chat(d, "team-a/claude-one") == 404
    bad = d.request("PUT", path, headers=MGMT, json_body=[{"api-key": 5}])
    assert bad.status == 400
    assert "claude-api-key[0].api-key must be a string" in bad.json()["error"]["message"]


def test_list_errors(d):
    assert d.request("PATCH", "/v0/management/api-keys", headers=MGMT, json_body={"x": 1}).status == 400
    assert d.request("DELETE", "/v0/management/api-keys", headers=MGMT).status == 400
    assert d.request("PUT", "/v0/management/api-keys", headers=MGMT, body=b"{bad").status == 400
    assert d.request("PATCH", "/v0/management/api-keys", headers=MGMT,
                     json_body={"index": 5, "value": "x"}).status == 404


def test_no_secret_in_the_logs(d):
    d.request("PUT", "/v0/management/debug", headers=MGMT, json_body={"value": True})
    d.request("PATCH", "/v0/management/api-keys", headers=MGMT, json_body={"old": "a", "new": "fresh-key-0003"})
    d.request("GET", "/v0/management/config", headers={"Authorization": "Bearer wrong-guess-0004"})
    logs = d.logs
    for secret in (SECRET, KEY, "sk-ant-mgmt-0001", "fresh-key-0003", "wrong-guess-0004"):
        assert secret not in logs
