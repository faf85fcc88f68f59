"""Management access end to end (contract, "Management API Authentication"; issue 2 point 5):
404 without a secret, 401 "invalid password", Bearer or X-Management-Key, bcrypt secrets,
MANAGEMENT_PASSWORD wins, lockout after five failures, reload semantics, nothing secret leaks.
The non-loopback rule is in test_netns.py."""

from __future__ import annotations

import pytest

from cliproxyd.secrets import hash_secret

SECRET = "your-secure-management-key"
NOT_FOUND = {"error": {"message": "Not Found", "type": "not_found"}}
INVALID = {"error": {"message": "invalid password", "type": "authentication_error"}}
PATHS = ("/v0/management/config", "/v0/management/usage", "/v0/management/config.yaml",
         "/v0/management", "/v0/management/anything/else")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("headers", [{}, bearer(SECRET), {"X-Management-Key": SECRET}])
def test_no_secret_every_management_path_is_404(daemon, path, headers):
    d = daemon({"api-keys": ["k"]}, name="nosecret")
    for method in ("GET", "PUT", "DELETE"):
        resp = d.request(method, path, headers=headers, body=b"" if method != "GET" else None)
        assert resp.status == 404
        assert resp.json() == NOT_FOUND


def test_secret_missing_or_wrong_is_401_invalid_password(daemon):
    d = daemon({"remote-management": {"secret-key": SECRET}})
    for headers in ({}, bearer("wrong"), {"X-Management-Key": "wrong"}, {"Authorization": "Bearer "}):
        resp = d.request("GET", "/v0/management/config", headers=headers)
        assert resp.status == 401
        assert resp.json() == INVALID


@pytest.mark.parametrize("headers", [bearer(SECRET), {"X-Management-Key": SECRET}])
def test_correct_secret_returns_effective_config_without_the_secret(daemon, headers):
    d = daemon({"api-keys": ["client-key-1"], "remote-management": {"secret-key": SECRET}})
    resp = d.request("GET", "/v0/management/config", headers=headers)
    assert resp.status == 200
    config = resp.json()
    assert config["api-keys"] == ["client-key-1"]
    assert config["port"] == d.port
    assert SECRET.encode() not in resp.body
    assert "secret-key" not in config.get("remote-management", {})


def test_unknown_management_path_after_auth_is_404(daemon):
    d = daemon({"remote-management": {"secret-key": SECRET}})
    assert d.request("GET", "/v0/management/no-such-thing").status == 401
    resp = d.request("GET", "/v0/management/no-such-thing", headers=bearer(SECRET))
    assert resp.status == 404 and resp.json() == NOT_FOUND


def test_bcrypt_secret_as_cliproxyapi_writes_it(daemon):
    hashed = hash_secret(SECRET)
    for prefix in ("$2a$", "$2b$", "$2y$"):
        d = daemon({"remote-management": {"secret-key": prefix + hashed[4:]}}, name=prefix.strip("$"))
        assert d.request("GET", "/v0/management/config", headers=bearer(SECRET)).status == 200
        assert d.request("GET", "/v0/management/config", headers=bearer("nope")).status == 401
        # The hash itself is not the password.
        assert d.request("GET", "/v0/management/config", headers=bearer(prefix + hashed[4:])).status == 401
        d.stop()


def test_management_password_env_wins_over_the_file(daemon):
    d = daemon({"remote-management": {"secret-key": "file-secret"}},
               env={"MANAGEMENT_PASSWORD": "env-secret"})
    assert d.request("GET", "/v0/management/config", headers=bearer("env-secret")).status == 200
    assert d.request("GET", "/v0/management/config", headers=bearer("file-secret")).status == 401


def test_management_password_env_alone_enables_management(daemon):
    d = daemon({}, env={"MANAGEMENT_PASSWORD": "env-secret"})
    assert d.request("GET", "/v0/management/config", headers=bearer("env-secret")).status == 200
    assert d.request("GET", "/v0/management/config").status == 401


def test_empty_management_password_env_is_ignored(daemon):
    d = daemon({}, env={"MANAGEMENT_PASSWORD": ""})
    assert d.request("GET", "/v0/management/config", headers=bearer("")).json() == NOT_FOUND


def test_five_failures_lock_the_address_out_with_retry_after(daemon):
    d = daemon({"api-keys": ["client-key"], "remote-management": {"secret-key": SECRET}})
    for _ in range(5):
        assert d.request("GET", "/v0/management/config", headers=bearer("wrong")).status == 401
    resp = d.request("GET", "/v0/management/config", headers=bearer(SECRET))
    assert resp.status == 403
    assert resp.json()["error"]["type"] == "permission_error"
    retry = int(resp.headers["Retry-After"])
    assert 0 < retry <= 30 * 60
    assert retry > 25 * 60  # the 30-minute lockout just started
    # Other management paths are locked too; client API keys are not concerned.
    assert d.request("GET", "/v0/management/usage", headers=bearer(SECRET)).status == 403
    assert d.request("GET", "/v1/xyz", headers=bearer("client-key")).status == 404
    assert d.request("GET", "/v1/xyz", headers=bearer("bad-client-key")).status == 401
    # The lockout survives a reload.
    d.reload({"api-keys": ["client-key"], "remote-management": {"secret-key": SECRET}})
    assert d.request("GET", "/v0/management/config", headers=bearer(SECRET)).status == 403


def test_a_success_resets_the_failure_count(daemon):
    d = daemon({"remote-management": {"secret-key": SECRET}})
    for _ in range(4):
        assert d.request("GET", "/v0/management/config", headers=bearer("wrong")).status == 401
    assert d.request("GET", "/v0/management/config", headers=bearer(SECRET)).status == 200
    for _ in range(4):
        assert d.request("GET", "/v0/management/config", headers=bearer("wrong")).status == 401
    assert d.request("GET", "/v0/management/config", headers=bearer(SECRET)).status == 200


def test_client_key_failures_never_lock_management(daemon):
    d = daemon({"api-keys": ["client-key"], "remote-management": {"secret-key": SECRET}})
    for _ in range(10):
        assert d.request("GET", "/v1/xyz", headers=bearer("wrong")).status == 401
    assert d.request("GET", "/v0/management/config", headers=bearer(SECRET)).status == 200


def test_settings_take_effect_on_reload(daemon):
    d = daemon({"remote-management": {"secret-key": SECRET}})
    assert d.request("GET", "/v0/management/config", headers=bearer(SECRET)).status == 200
    d.reload({"remote-management": {"secret-key": "rotated"}})
    assert d.request("GET", "/v0/management/config", headers=bearer(SECRET)).status == 401
    assert d.request("GET", "/v0/management/config", headers=bearer("rotated")).status == 200
    d.reload({})
    assert d.request("GET", "/v0/management/config", headers=bearer("rotated")).json() == NOT_FOUND


def test_secrets_never_reach_the_logs(daemon):
    d = daemon({"remote-management": {"secret-key": SECRET}, "debug": True})
    d.request("GET", "/v0/management/config", headers=bearer(SECRET))
    d.request("GET", "/v0/management/config", headers={"X-Management-Key": "typo-secret-77"})
    d.reload()
    logs = d.logs
    assert "management authentication failed from 127.0.0.1" in logs
    assert SECRET not in logs and "typo-secret-77" not in logs
