"""cliproxyd.recording: one finished request → one usage record and bounded metric samples."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import ir
from cliproxyd.metrics import Metrics
from cliproxyd.pipeline import Outcome
from cliproxyd.recording import RequestDone, api_key_for, record


@dataclass
class _Recorder:
    records: list = field(default_factory=list)

    def record(self, config, rec):
        if config.usage_statistics_enabled:
            self.records.append(rec)


@dataclass
class _State:
    metrics: Metrics = field(default_factory=Metrics)
    usage: _Recorder = field(default_factory=_Recorder)


@dataclass(frozen=True)
class _Config:
    usage_statistics_enabled: bool = True


@dataclass(frozen=True)
class _Listed:
    id: str


class _Registry:
    def find(self, model):
        return _Listed(model) if model == "known-model" else None


@dataclass(frozen=True)
class _Runtime:
    config: _Config = _Config()
    registry: _Registry = field(default_factory=_Registry)


def done(outcome, status=200, **kw) -> RequestDone:
    base = {"client_format": "claude", "api": "key-1", "status": status, "started": 1_700_000_000.5,
                "duration": 1.25, "first_byte": 0.25, "outcome": outcome}
    base.update(kw)
    return RequestDone(**base)


def samples(state: _State) -> dict:
    out = {}
    for family in text_string_to_metric_families(state.metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_api_key_is_the_principal_or_the_route_pattern():
    assert api_key_for("ck", "POST", "messages", "/v1/messages") == "ck"
    assert api_key_for("", "POST", "messages", "/v1/messages") == "POST /v1/messages"
    assert api_key_for("", "POST", "gemini_action", "/v1beta/models/x:generateContent") == \
        "POST /v1beta/models/*action"


def test_a_success_after_a_failover_is_one_record_and_one_upstream_error():
    outcome = Outcome(model="known-model", provider="claude", credential="claude:...abcd",
                      credential_id="claude-0123456789abcdef", attempts=2,
                      usage=ir.Usage(input_tokens=10, output_tokens=4, cached_input_tokens=3))
    outcome.failures.append(("claude", ProxyError(ErrorKind.RATE_LIMITED, "slow down")))
    state = _State()
    record(state, _Runtime(), done(outcome))
    [rec] = state.usage.records
    assert (rec.api, rec.model, rec.source, rec.auth_index, rec.failed) == (
        "key-1", "known-model", "claude:...abcd", "0123456789abcdef", False)
    assert (rec.input_tokens, rec.output_tokens, rec.cached_tokens, rec.total_tokens) == (10, 4, 3, 14)
    assert (rec.ts_us, rec.latency_ms) == (1_700_000_000_500_000, 1250)
    found = samples(state)
    key = (("client_format", "claude"), ("code", "200"), ("model", "known-model"), ("provider", "claude"))
    assert found[("cliproxyd_requests_total", key)] == 1
    assert found[("cliproxyd_upstream_errors_total", (("provider", "claude"), ("reason", "rate_limited")))] == 1
    cached = (("kind", "cached"), ("model", "known-model"), ("provider", "claude"))
    assert found[("cliproxyd_tokens_total", cached)] == 3


def test_unknown_models_are_other_and_failures_are_marked():
    state = _State()
    record(state, _Runtime(), done(None, status=404, requested_model="typed-by-a-client"))
    [rec] = state.usage.records
    assert rec.failed and rec.model == "typed-by-a-client"  # usage keeps the name asked for
    found = samples(state)
    labels = (("client_format", "claude"), ("code", "404"), ("model", "other"), ("provider", "none"))
    assert found[("cliproxyd_requests_total", labels)] == 1
    assert "typed-by-a-client" not in state.metrics.exposition().decode()


def test_mid_stream_break_counts_but_a_client_cancel_does_not():
    broken = Outcome(model="known-model", provider="claude", attempts=1,
                     stream_error=ProxyError(ErrorKind.UPSTREAM_ERROR, "lost", status=502))
    cancelled = Outcome(model="known-model", provider="claude", attempts=1,
                        stream_error=ProxyError(ErrorKind.UPSTREAM_ERROR, "gone", status=499))
    state = _State()
    record(state, _Runtime(), done(broken))
    record(state, _Runtime(), done(cancelled))
    assert all(r.failed for r in state.usage.records)
    errors = {k: v for k, v in samples(state).items() if k[0] == "cliproxyd_upstream_errors_total" and v}
    assert errors == {("cliproxyd_upstream_errors_total", (("provider", "claude"), ("reason", "upstream_error"))): 1}


def test_nothing_recorded_while_statistics_are_off_but_metrics_still_count():
    state = _State()
    record(state, _Runtime(config=_Config(usage_statistics_enabled=False)), done(Outcome(model="m")))
    assert state.usage.records == []
    assert sum(v for k, v in samples(state).items() if k[0] == "cliproxyd_requests_total") == 1


def test_a_broken_state_never_raises():
    record(object(), _Runtime(), done(None))  # logged, not raised: the answer is already sent
