"""cliproxyd/access.py: the pure access rules, and the client-key rules end to end (contract,
"API Key Authentication": every path under /v1 and /v1beta, four places a key may come from,
open mode, the 401 body in each client format)."""

from __future__ import annotations

import pytest
from tornado.httputil import HTTPHeaders

from cliproxyd import access
from cliproxyd.access import (
    LOCKOUT_SECONDS,
    Lockout,
    check_client,
    check_management_precondition,
    client_key_candidates,
    is_loopback,
    management_key,
    match_client_key,
)
from cliproxyd.errors import ErrorKind

KEYS = ["your-api-key-1", "your-api-key-2", "your-api-key-3"]
CONTRACT_401 = {"error": {"message": "invalid password", "type": "authentication_error"}}


# --- pure rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, query, expected",
    [
        ({"Authorization": "Bearer k1"}, None, ["k1"]),
        ({"authorization": "bearer   k1  "}, None, ["k1"]),
        ({"Authorization": "k-bare"}, None, ["k-bare"]),
        ({"x-api-key": "k2"}, None, ["k2"]),
        ({"X-Goog-Api-Key": "k3"}, None, ["k3"]),
        ({}, "k4", ["k4"]),
        ({"Authorization": "Bearer a", "x-api-key": "b", "x-goog-api-key": "c"}, "d", ["a", "b", "c", "d"]),
        ({"Authorization": ""}, "", []),
    ],
)
def test_client_key_candidates(headers, query, expected):
    assert client_key_candidates(headers, query) == expected
    assert client_key_candidates(HTTPHeaders(headers), query) == expected


def test_match_client_key_any_source_any_key():
    assert match_client_key(KEYS, ["wrong", "your-api-key-2"]) == "your-api-key-2"
    assert match_client_key(KEYS, ["your-api-key-1x"]) is None
    assert match_client_key(KEYS, []) is None
    assert match_client_key(KEYS, ["your-api-key"]) is None  # a prefix is not a match


def test_check_client_open_mode_and_failures():
    assert check_client([], []) is None
    assert check_client(["", ""], ["anything"]) is None  # only empty entries = open
    err = check_client(KEYS, [])
    assert err is not None and err.kind is ErrorKind.AUTHENTICATION and err.status == 401
    assert err.message == "invalid password"
    assert check_client(KEYS, ["nope"]).status == 401
    assert check_client(KEYS, ["your-api-key-3"]) is None


def test_client_key_compared_with_compare_digest(monkeypatch):
    calls = []
    real = access.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", spy)
    assert match_client_key(KEYS, ["your-api-key-1"]) == "your-api-key-1"
    assert len(calls) == len(KEYS)  # every key compared, no early exit


def test_management_key_sources():
    assert management_key({"Authorization": "Bearer s3cret"}) == "s3cret"
    assert management_key({"X-Management-Key": "s3cret"}) == "s3cret"
    assert management_key({"Authorization": "Bearer a", "X-Management-Key": "b"}) == "a"
    assert management_key({}) == ""


@pytest.mark.parametrize(
    "address, expected",
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:127.1.2.3", True),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("0.0.0.0", False),
        ("", False),
        ("localhost", False),
    ],
)
def test_is_loopback(address, expected):
    assert is_loopback(address) is expected


def test_lockout_after_five_failures_for_thirty_minutes():
    lock = Lockout()
    for i in range(4):
        lock.failure("10.0.0.2", now=100.0 + i)
        assert lock.retry_after("10.0.0.2", now=100.0 + i) is None
    lock.failure("10.0.0.2", now=104.0)
    assert lock.retry_after("10.0.0.2", now=104.0) == LOCKOUT_SECONDS
    assert lock.retry_after("10.0.0.2", now=104.0 + 600) == LOCKOUT_SECONDS - 600
    assert lock.retry_after("10.0.0.3", now=105.0) is None  # per address
    assert lock.retry_after("10.0.0.2", now=104.0 + LOCKOUT_SECONDS) is None
    # After the lockout a new failure starts a fresh count.
    lock.failure("10.0.0.2", now=104.0 + LOCKOUT_SECONDS + 1)
    assert lock.retry_after("10.0.0.2", now=104.0 + LOCKOUT_SECONDS + 1) is None


def test_lockout_success_resets_the_count():
    lock = Lockout()
    for i in range(4):
        lock.failure("a", now=float(i))
    lock.success("a")
    for i in range(4):
        lock.failure("a", now=10.0 + i)
    assert lock.retry_after("a", now=20.0) is None
    lock.failure("a", now=21.0)
    assert lock.retry_after("a", now=21.0) is not None


def test_lockout_forgets_old_failures_of_idle_addresses():
    lock = Lockout()
    for i in range(4):
        lock.failure("a", now=float(i))
    lock.failure("b", now=3 * 3600.0)  # a's failures are hours old: forgotten
    lock.failure("a", now=3 * 3600.0)
    assert lock.retry_after("a", now=3 * 3600.0) is None


def test_management_precondition_order():
    lock = Lockout()
    missing = check_management_precondition("", False, "10.1.1.1", lock, 0.0)
    assert missing.status == 404 and missing.message == "Not Found"
    remote = check_management_precondition("s", False, "10.1.1.1", lock, 0.0)
    assert remote.status == 403 and remote.kind is ErrorKind.PERMISSION
    assert check_management_precondition("s", True, "10.1.1.1", lock, 0.0) is None
    assert check_management_precondition("s", False, "127.0.0.1", lock, 0.0) is None
    for _ in range(5):
        lock.failure("127.0.0.1", now=0.0)
    locked = check_management_precondition("s", False, "127.0.0.1", lock, 10.0)
    assert locked.status == 403 and locked.retry_after == LOCKOUT_SECONDS - 10


# --- end to end: client keys -----------------------------------------------------------------


@pytest.fixture
def keyed(daemon):
    return daemon({"api-keys": KEYS})


@pytest.mark.parametrize(
    "headers, query",
    [
        ({"Authorization": "Bearer your-api-key-1"}, ""),
        ({"x-api-key": "your-api-key-2"}, ""),
        ({"x-goog-api-key": "your-api-key-3"}, ""),
        ({}, "?key=your-api-key-1"),
    ],
)
def test_each_key_source_is_accepted(keyed, headers, query):
    for path in ("/v1/unknown-route", "/v1beta/unknown/route", "/v1/messages/nope"):
        assert keyed.request("GET", path + query, headers=headers).status == 404, path


@pytest.mark.parametrize("path", ["/v1", "/v1/", "/v1/chat/completions", "/v1/models", "/v1/xyz/abc",
                                  "/v1beta", "/v1beta/models", "/v1/responses", "/v1/messages"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_v1_path_needs_a_key(keyed, path, method):
    assert keyed.request(method, path, body=b"{}").status == 401
    assert keyed.request(method, path, headers={"Authorization": "Bearer wrong"}, body=b"{}").status == 401


def test_401_body_in_openai_shape_is_the_contracts(keyed):
    resp = keyed.request("POST", "/v1/chat/completions", json_body={"model": "m", "messages": []})
    assert resp.status == 401
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert body["error"]["message"] == "invalid password"
    assert body["error"]["type"] == "authentication_error"


def test_401_body_on_anthropic_routes_carries_type_error(keyed):
    body = keyed.request("POST", "/v1/messages", json_body={}).json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["message"] == "invalid password"


def test_401_body_on_gemini_routes_carries_code_and_status(keyed):
    body = keyed.request("POST", "/v1beta/models/gemini-2.5-flash:generateContent", json_body={}).json()
    assert body["error"]["code"] == 401
    assert body["error"]["status"] == "UNAUTHENTICATED"
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["message"] == "invalid password"


def test_unknown_v1_path_with_a_key_is_404_in_the_client_format(keyed):
    key = {"Authorization": "Bearer your-api-key-1"}
    openai = keyed.request("GET", "/v1/xyz", headers=key).json()
    assert openai["error"]["type"] in ("not_found", "invalid_request_error")
    gemini = keyed.request("GET", "/v1beta/xyz", headers=key).json()
    assert gemini["error"]["code"] == 404 and gemini["error"]["status"] == "NOT_FOUND"
    claude = keyed.request("GET", "/v1/messages/xyz", headers=key).json()
    assert claude["type"] == "error" and claude["error"]["type"] == "not_found_error"


def test_no_api_keys_means_open(daemon):
    for config in ({}, {"api-keys": []}):
        d = daemon(config)
        assert d.request("GET", "/v1/xyz").status == 404
        assert d.request("GET", "/v1beta/xyz").status == 404
        d.stop()


def test_routes_outside_v1_need_no_key(keyed):
    assert keyed.request("GET", "/healthz").status == 200
    assert keyed.request("GET", "/").status == 200
    assert keyed.request("GET", "/elsewhere").status == 404


def test_client_keys_never_reach_the_logs(keyed):
    keyed.request("GET", "/v1/xyz?key=your-api-key-2")
    keyed.request("GET", "/v1/xyz?key=not-a-key-zz9")
    keyed.request("GET", "/v1/xyz", headers={"x-api-key": "header-wrong-zz8"})
    logs = keyed.logs
    assert "/v1/xyz" in logs
    for secret in ("your-api-key-2", "not-a-key-zz9", "header-wrong-zz8"):
        assert secret not in logs


# --- the official SDKs work unchanged ----------------------------------------------------------


def test_openai_sdk_bearer_key(keyed):
    import openai

    ok = openai.OpenAI(base_url=keyed.url + "/v1", api_key="your-api-key-1", max_retries=0)
    assert ok.models.list().object == "list"
    bad = openai.OpenAI(base_url=keyed.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.models.list()
    assert caught.value.status_code == 401
    assert caught.value.body == {"message": "invalid password", "type": "authentication_error",
                                 "param": None, "code": None}


def test_anthropic_sdk_x_api_key(keyed):
    import anthropic

    request = {"model": "test-model", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    bad = anthropic.Anthropic(base_url=keyed.url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        bad.messages.create(**request)
    assert caught.value.body == {"type": "error", "error": {"type": "authentication_error",
                                                            "message": "invalid password"}}
    good = anthropic.Anthropic(base_url=keyed.url, api_key="your-api-key-2", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as caught:
        good.messages.create(**request)  # no upstream configured: fails, but not on the key
    assert caught.value.status_code != 401


def test_google_genai_sdk_x_goog_api_key(keyed):
    from google import genai
    from google.genai import errors, types

    def client(key: str) -> genai.Client:
        return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=keyed.url,
                                                                         api_version="v1beta"))

    bad, good = client("wrong"), client("your-api-key-3")  # kept referenced: GC closes them
    with pytest.raises(errors.ClientError) as caught:
        bad.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert caught.value.code == 401
    assert caught.value.status == "UNAUTHENTICATED"
    with pytest.raises(errors.APIError) as caught:
        good.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert caught.value.code != 401
