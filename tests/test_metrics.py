"""cliproxyd.metrics: the issue-5 metric set, unit level (bounded, seeded labels; scrape-time
credentials) and end to end (/metrics parsed with prometheus_client's parser agrees with the
requests made through the OpenAI SDK against fake upstreams)."""

from __future__ import annotations

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cliproxyd.metrics import Metrics
from tests.fakes.upstreams import start_fake

KEY = "client-key-metrics-0001"
SECRET = "metrics-mgmt-secret"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def total(found: dict, name: str, **labels) -> float:
    return sum(v for (n, ls), v in found.items()
               if n == name and all(dict(ls).get(k) == want for k, want in labels.items()))


# -- unit ---------------------------------------------------------------------------------------


def test_histogram_buckets_count_observations_at_or_below_their_bound():
    m = Metrics()
    for seconds in (0.1, 0.11, 0.25, 700.0):  # two exactly on a bound, one beyond the last
        m.observe_proxy(client_format="claude", provider="gemini", model="m", code=200,
                        duration=seconds, ttfb=None, tokens={})
    found = samples(m.exposition().decode())
    bucket = "cliproxyd_request_duration_seconds_bucket"
    assert value(found, bucket, client_format="claude", le="0.1") == 1
    assert value(found, bucket, client_format="claude", le="0.25") == 3
    assert value(found, bucket, client_format="claude", le="600.0") == 3
    assert value(found, bucket, client_format="claude", le="+Inf") == 4
    assert value(found, "cliproxyd_request_duration_seconds_count", client_format="claude") == 4
    assert value(found, "cliproxyd_request_duration_seconds_sum", client_format="claude") == \
        pytest.approx(700.46)
    assert value(found, "cliproxyd_requests_total", client_format="claude", provider="gemini",
                 model="m", code="200") == 4


def test_seeded_labels_read_zero_before_any_request():
    found = samples(Metrics().exposition().decode())
    assert value(found, "cliproxyd_upstream_errors_total", provider="gemini", reason="rate_limited") == 0
    assert ("cliproxyd_request_duration_seconds_count", (("client_format", "claude"),)) in found
    assert ("cliproxyd_upstream_ttfb_seconds_count", (("provider", "codex"),)) in found


def test_observe_proxy_and_credentials_at_scrape_time():
    m = Metrics()
    state = {"claude": {"available": 1, "cooling_down": 1}}
    m.track_credentials(lambda: state)
    m.observe_proxy(client_format="openai_chat", provider="claude", model="m1", code=200,
                    duration=2.0, ttfb=0.5, tokens={"input_tokens": 7, "output_tokens": 3,
                                                    "cached_tokens": 0, "reasoning_tokens": 2})
    m.observe_proxy(client_format="openai_chat", provider="none", model="other", code=404,
                    duration=0.01, ttfb=None, tokens={})
    found = samples(m.exposition().decode())
    assert value(found, "cliproxyd_requests_total", client_format="openai_chat", provider="claude",
                 model="m1", code="200") == 1
    assert value(found, "cliproxyd_tokens_total", provider="claude", model="m1", kind="input") == 7
    assert value(found, "cliproxyd_tokens_total", provider="claude", model="m1", kind="reasoning") == 2
    assert value(found, "cliproxyd_request_duration_seconds_count", client_format="openai_chat") == 2
    assert total(found, "cliproxyd_upstream_ttfb_seconds_count") == 1  # "none" is not observed
    assert value(found, "cliproxyd_credentials", provider="claude", state="cooling_down") == 1
    state["claude"] = {"available": 2, "cooling_down": 0}  # read again at the next scrape
    found = samples(m.exposition().decode())
    assert value(found, "cliproxyd_credentials", provider="claude", state="available") == 2


# -- end to end ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fakes():
    claude, compat = start_fake("claude"), start_fake("openai")
    yield claude, compat
    claude.stop()
    compat.stop()


def test_metrics_agree_with_the_requests_made(daemon, fakes):
    claude, compat = fakes
    d = daemon({
        "api-keys": [KEY], "remote-management": {"secret-key": SECRET},
        "claude-api-key": [{"api-key": f"sk-ant-metrics-000{i}", "base-url": claude.base_url,
                            "models": [{"name": "claude-m"}]} for i in (1, 2)],
        "openai-compatibility": [{"name": "local", "base-url": compat.base_url + "/v1",
                                  "api-key-entries": [{"api-key": "sk-compat-0001"}],
                                  "models": [{"name": "compat-m"}]}],
    })
    client = openai.OpenAI(base_url=d.url + "/v1", api_key=KEY, max_retries=0)
    msgs = [{"role": "user", "content": "count me"}]
    claude.set_mode("500", times=1)  # the first attempt fails, the next credential answers
    tokens_in = tokens_out = 0
    for _ in range(2):
        r = client.chat.completions.create(model="claude-m", messages=msgs)
        tokens_in += r.usage.prompt_tokens
        tokens_out += r.usage.completion_tokens
    stream = client.chat.completions.create(model="compat-m", messages=msgs, stream=True,
                                            stream_options={"include_usage": True})
    compat_usage = [c.usage for c in stream if c.usage is not None][-1]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="client-typed-anything-123", messages=msgs)
    d.request("PUT", "/v0/management/debug", headers={"Authorization": f"Bearer {SECRET}"},
              json_body={"value": True})

    found = samples(d.request("GET", "/metrics").body.decode())
    chat = {"client_format": "openai_chat"}
    assert value(found, "cliproxyd_requests_total", provider="claude", model="claude-m", code="200", **chat) == 2
    assert value(found, "cliproxyd_requests_total", provider="openai_compat", model="compat-m",
                 code="200", **chat) == 1
    assert value(found, "cliproxyd_requests_total", provider="none", model="other", code="404", **chat) == 1
    assert "client-typed-anything-123" not in d.request("GET", "/metrics").body.decode()
    assert value(found, "cliproxyd_tokens_total", provider="claude", model="claude-m", kind="input") == tokens_in
    assert value(found, "cliproxyd_tokens_total", provider="claude", model="claude-m", kind="output") == tokens_out
    assert value(found, "cliproxyd_tokens_total", provider="openai_compat", model="compat-m",
                 kind="output") == compat_usage.completion_tokens
    assert total(found, "cliproxyd_upstream_errors_total", provider="claude") == 1
    assert value(found, "cliproxyd_request_duration_seconds_count", **chat) == 4
    assert value(found, "cliproxyd_upstream_ttfb_seconds_count", provider="claude") == 2
    assert value(found, "cliproxyd_upstream_ttfb_seconds_count", provider="openai_compat") == 1
    assert total(found, "cliproxyd_credentials", provider="claude") == 2
    assert total(found, "cliproxyd_credentials", provider="openai_compat") == 1
    assert value(found, "cliproxyd_inflight_requests") == 1  # the scrape itself
    assert value(found, "cliproxyd_config_reloads_total", result="success") == 1
    assert total(found, "cliproxyd_build_info") == 1
