"""cliproxyd/routing/pool.py: selection strategies, cooldowns on an injected clock, retry policy,
carry-over across reloads and the metrics view."""

from __future__ import annotations

import pytest

from cliproxyd.config import Config, ProviderKey
from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.routing.models import build_registry
from cliproxyd.routing.pool import (
    AUTH_COOLDOWN,
    BACKOFF_CAP,
    CODE_CANCELLED,
    CODE_CONNECT_FAILED,
    CODE_STREAM_BROKEN,
    CODE_TIMEOUT,
    CONNECT_COOLDOWN,
    SERVER_ERROR_COOLDOWN,
    Pool,
    cooldown_for,
    should_retry,
)

MODEL = "gemini-2.5-pro"


def three_keys(priorities=(0, 0, 0)):
    cfg = Config(gemini_api_key=tuple(ProviderKey(f"key-aaaa-000{n}", priority=p)
                                      for n, p in enumerate(priorities)))
    reg = build_registry(cfg)
    return reg, reg.resolve(MODEL)


def err(status, kind=None, retry_after=None, code=None):
    from cliproxyd.errors import kind_for_status
    return ProxyError(kind or kind_for_status(status), "x", status=status, retry_after=retry_after,
                      code=code)


def keys(picks):
    return [c.api_key[-1] for c, _ in picks]


def test_round_robin_spreads_evenly_in_order():
    _, cands = three_keys()
    pool = Pool("round-robin")
    picks = [pool.pick(MODEL, cands, now=0.0) for _ in range(6)]
    assert keys(picks) == list("012012")


def test_round_robin_cursor_is_per_model():
    _, cands = three_keys()
    pool = Pool()
    pool.pick(MODEL, cands, 0.0)
    assert keys([pool.pick("other", cands, 0.0)]) == ["0"]
    assert keys([pool.pick(MODEL, cands, 0.0)]) == ["1"]


def test_fill_first_uses_first_until_it_cools():
    _, cands = three_keys()
    pool = Pool("fill-first")
    assert keys([pool.pick(MODEL, cands, 0.0) for _ in range(3)]) == list("000")
    pool.report(cands[0][0], MODEL, err(500), now=0.0)
    assert keys([pool.pick(MODEL, cands, 1.0) for _ in range(2)]) == list("11")
    assert keys([pool.pick(MODEL, cands, 1.0 + SERVER_ERROR_COOLDOWN)]) == ["0"]  # recovered


def test_failover_order_excludes_tried_credentials():
    _, cands = three_keys()
    pool = Pool("fill-first")
    tried = []
    for expected in "012":
        cred, upstream = pool.pick(MODEL, cands, 0.0, exclude=tried)
        assert cred.api_key.endswith(expected) and upstream == MODEL
        tried.append(cred.id)
    assert pool.pick(MODEL, cands, 0.0, exclude=tried) is None


def test_failover_from_a_429_key_to_the_next():
    _, cands = three_keys()
    pool = Pool("round-robin")
    first, _ = pool.pick(MODEL, cands, 0.0)
    pool.report(first, MODEL, err(429, retry_after=10), 0.0)
    nxt, _ = pool.pick(MODEL, cands, 0.0, exclude=[first.id])
    assert nxt.id != first.id
    # Later requests skip the cooling key until it recovers.
    later = {pool.pick(MODEL, cands, 5.0)[0].id for _ in range(4)}
    assert first.id not in later
    assert first.id in {pool.pick(MODEL, cands, 10.0)[0].id for _ in range(3)}


def test_priority_tier_wins_while_available():
    _, cands = three_keys(priorities=(0, 5, 5))
    pool = Pool("round-robin")
    assert sorted(keys([pool.pick(MODEL, cands, 0.0) for _ in range(4)])) == list("1122")
    for c, _ in cands[1:]:
        pool.report(c, MODEL, err(503), 0.0)
    assert keys([pool.pick(MODEL, cands, 1.0)]) == ["0"]  # lower tier only when the top cools


def test_retry_after_is_honoured_exactly():
    _, cands = three_keys()
    pool = Pool()
    cred = cands[0][0]
    assert pool.report(cred, MODEL, err(429, retry_after=42.5), 100.0) == 42.5
    assert pool.available_at(cred, MODEL, 100.0) == 142.5
    assert pool.available_at(cred, MODEL, 142.5) == 142.5  # usable from then on


def test_backoff_doubles_caps_and_resets_after_success():
    _, cands = three_keys()
    pool = Pool()
    cred = cands[0][0]
    got = [pool.report(cred, MODEL, err(429), float(n)) for n in range(4)]
    assert got == [1.0, 2.0, 4.0, 8.0]
    for n in range(30):
        last = pool.report(cred, MODEL, err(429), 100.0 + n)
    assert last == BACKOFF_CAP
    pool.report(cred, MODEL, None, 5000.0)  # success
    assert pool.report(cred, MODEL, err(429), 5001.0) == 1.0


def test_backoff_is_per_credential_and_model():
    _, cands = three_keys()
    pool = Pool()
    a, b = cands[0][0], cands[1][0]
    pool.report(a, MODEL, err(429), 0.0)
    pool.report(a, MODEL, err(429), 0.0)
    assert pool.report(a, "gemini-2.5-flash", err(429), 0.0) == 1.0
    assert pool.report(b, MODEL, err(429), 0.0) == 1.0
    assert pool.available_at(a, "gemini-2.5-flash", 0.5) == 1.0
    assert pool.available_at(b, "gemini-2.5-flash", 0.5) == 0.5


@pytest.mark.parametrize("error,seconds", [
    (err(500), SERVER_ERROR_COOLDOWN),
    (err(502), SERVER_ERROR_COOLDOWN),
    (err(503), SERVER_ERROR_COOLDOWN),
    (err(529), SERVER_ERROR_COOLDOWN),
    (err(401), AUTH_COOLDOWN),
    (err(403), AUTH_COOLDOWN),
    (err(402), AUTH_COOLDOWN),
    (err(400, kind=ErrorKind.AUTHENTICATION), AUTH_COOLDOWN),  # Gemini's API_KEY_INVALID
    (err(502, code=CODE_CONNECT_FAILED), CONNECT_COOLDOWN),
    (err(504, code=CODE_TIMEOUT), 0.0),
    (err(502, code=CODE_STREAM_BROKEN), 0.0),
    (err(499, code=CODE_CANCELLED), 0.0),
    (err(408), 0.0),
    (err(400), 0.0),
    (err(404), 0.0),
    (err(413), 0.0),
    (err(422), 0.0),
])
def test_cooldown_table(error, seconds):
    assert cooldown_for(error, 0) == seconds


def test_5xx_and_401_cooldowns_expire_on_the_injected_clock():
    _, cands = three_keys()
    pool = Pool("fill-first")
    a, b = cands[0][0], cands[1][0]
    pool.report(a, MODEL, err(500), 0.0)
    pool.report(b, MODEL, err(401), 0.0)
    assert keys([pool.pick(MODEL, cands, 59.9)]) == ["2"]
    assert keys([pool.pick(MODEL, cands, 60.0)]) == ["0"]
    pool.report(a, MODEL, err(500), 60.0)
    assert keys([pool.pick(MODEL, cands, 119.0)]) == ["2"]
    assert keys([pool.pick(MODEL, cands, AUTH_COOLDOWN)]) == ["0"]  # a back at 120; b at 1800


def test_all_cooling_is_429_with_soonest_recovery():
    _, cands = three_keys()
    pool = Pool()
    for (c, _), secs in zip(cands, (30, 12.2, 90)):
        pool.report(c, MODEL, err(429, retry_after=secs), 0.0)
    with pytest.raises(ProxyError) as info:
        pool.pick(MODEL, cands, 2.0)
    e = info.value
    assert e.status == 429 and e.kind is ErrorKind.RATE_LIMITED
    assert e.retry_after == 11  # ceil(12.2 - 2)
    assert e.code == "model_cooldown" and MODEL in e.message


def test_all_cooling_counts_only_untried():
    _, cands = three_keys()
    pool = Pool()
    pool.report(cands[1][0], MODEL, err(429, retry_after=5), 0.0)
    pool.report(cands[2][0], MODEL, err(429, retry_after=9), 0.0)
    with pytest.raises(ProxyError) as info:
        pool.pick(MODEL, cands, 0.0, exclude=[cands[0][0].id])
    assert info.value.retry_after == 5


def test_sub_second_wait_reports_one_second():
    _, cands = three_keys()
    pool = Pool()
    for c, _ in cands:
        pool.report(c, MODEL, err(429, retry_after=0.3), 0.0)
    with pytest.raises(ProxyError) as info:
        pool.pick(MODEL, cands, 0.0)
    assert info.value.retry_after == 1


@pytest.mark.parametrize("error,retry", [
    (err(408), True), (err(429), True), (err(500), True), (err(502), True), (err(503), True),
    (err(504), True), (err(529), True), (err(401), True), (err(403), True),
    (err(502, code=CODE_CONNECT_FAILED), True), (err(504, code=CODE_TIMEOUT), True),
    (err(400, kind=ErrorKind.AUTHENTICATION), True),
    (err(400), False), (err(404), False), (err(413), False), (err(422), False), (err(409), False),
    (err(499, code=CODE_CANCELLED), False),
])
def test_retry_policy(error, retry):
    assert should_retry(error) is retry


def test_carry_over_keeps_cooldowns_across_reload():
    _, cands = three_keys()
    old = Pool("round-robin")
    old.report(cands[0][0], MODEL, err(429, retry_after=100), 0.0)
    old.report(cands[1][0], MODEL, err(429), 0.0)
    # Reload: a new registry (same keys plus one) and a new pool with another strategy.
    cfg = Config(gemini_api_key=tuple(ProviderKey(f"key-aaaa-000{n}") for n in range(4)))
    new_cands = build_registry(cfg).resolve(MODEL)
    new = Pool("fill-first")
    new.carry_over(old)
    assert keys([new.pick(MODEL, new_cands, 50.0)]) == ["1"]  # 0 still cooling
    assert new.report(new_cands[1][0], MODEL, err(429), 50.0) == 2.0  # backoff ladder kept
    assert new.strategy == "fill-first"
    old.report(cands[2][0], MODEL, err(500), 50.0)  # the old pool no longer affects the new one
    assert keys([new.pick(MODEL, new_cands, 51.0)]) == ["2"]  # 1 cools until 52


def test_describe_counts_available_and_cooling_per_provider():
    cfg = Config(gemini_api_key=(ProviderKey("g-key-00001"), ProviderKey("g-key-00002")),
                 claude_api_key=(ProviderKey("c-key-00001"),))
    reg = build_registry(cfg)
    pool = Pool()
    pool.report(reg.credentials[0], MODEL, err(503), 0.0)
    assert pool.describe(reg.credentials, 1.0) == {
        "gemini": {"available": 1, "cooling_down": 1},
        "claude": {"available": 1, "cooling_down": 0},
    }
    assert pool.describe(reg.credentials, 61.0)["gemini"] == {"available": 2, "cooling_down": 0}
    assert list(pool.cooldowns(1.0).values()) == [59.0]


def test_prune_drops_expired_state_but_keeps_backoff_history():
    _, cands = three_keys()
    pool = Pool()
    pool.report(cands[0][0], MODEL, err(500), 0.0)
    pool.report(cands[1][0], MODEL, err(429), 0.0)
    pool.prune(1000.0)
    assert pool.report(cands[1][0], MODEL, err(429), 1000.0) == 2.0
    assert pool._states.keys() == {(cands[1][0].id, MODEL)}


def test_unknown_strategy_rejected():
    with pytest.raises(ValueError):
        Pool("random")


def test_state_table_prunes_itself_when_large():
    _, cands = three_keys()
    pool = Pool()
    cred = cands[0][0]
    for n in range(5000):
        pool.report(cred, f"model-{n}", err(500), float(n))  # each expires 60 s later
    assert len(pool._states) <= 4097
    assert pool.available_at(cred, "model-4999", 4999.0) == 4999.0 + SERVER_ERROR_COOLDOWN
