"""cliproxyd/handlers/misc.py and cliproxyd/metrics.py: GET /, /healthz, /metrics (process
metrics, build info, request counts labelled by route name, never by raw path)."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from cliproxyd import __version__
from cliproxyd.metrics import Metrics


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_root_describes_the_server(daemon):
    body = daemon({}).request("GET", "/").json()
    assert body["name"] == "cliproxyd"
    assert body["version"] == __version__
    assert "POST /v1/chat/completions" in body["endpoints"]
    assert "POST /v1/messages" in body["endpoints"]


def test_healthz(daemon):
    d = daemon({"api-keys": ["k"]})
    resp = d.request("GET", "/healthz")
    assert resp.status == 200 and resp.json() == {"status": "ok"}
    head = d.request("HEAD", "/healthz")
    assert head.status == 200 and head.body == b""


def test_unknown_path_outside_the_api_is_a_json_404(daemon):
    resp = daemon({}).request("GET", "/no/such/page")
    assert resp.status == 404
    assert resp.json() == {"error": {"message": "Not Found", "type": "not_found"}}


def test_wrong_method_is_405_json(daemon):
    resp = daemon({}).request("POST", "/healthz", body=b"")
    assert resp.status == 405
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_metrics_exposition(daemon):
    d = daemon({"api-keys": ["k"]})
    d.request("GET", "/healthz")
    d.request("GET", "/v1/some-unique-raw-path-4711", headers={"Authorization": "Bearer k"})
    d.request("GET", "/v1/some-unique-raw-path-4711")
    resp = d.request("GET", "/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = resp.body.decode()
    samples = _samples(text)
    def count(code: str, route: str) -> float:
        return samples[("cliproxyd_http_requests_total",
                        (("code", code), ("method", "GET"), ("route", route)))]

    assert count("200", "healthz") == 1
    assert count("404", "openai_unknown") == 1
    assert count("401", "openai_unknown") == 1
    assert "some-unique-raw-path" not in text  # labels are route names, never raw paths
    assert any(name == "process_resident_memory_bytes" for name, _ in samples)
    assert any(name == "python_info" for name, _ in samples)
    build = [labels for name, labels in samples if name == "cliproxyd_build_info"]
    assert build and ("version", __version__) in build[0]
    assert re.search(r'^cliproxyd_config_reloads_total\{result="success"\} 0\.0$', text, re.MULTILINE)


def test_metrics_require_auth(daemon):
    """metrics.require-auth makes /metrics take the management secret (issue 5), not a client key."""
    d = daemon({"api-keys": ["k"], "metrics": {"require-auth": True},
                "remote-management": {"secret-key": "m-secret"}})
    assert d.request("GET", "/metrics").status == 401
    assert d.request("GET", "/metrics", headers={"Authorization": "Bearer k"}).status == 401
    assert d.request("GET", "/metrics", headers={"Authorization": "Bearer m-secret"}).status == 200


def test_reload_counter_counts_successes(daemon):
    d = daemon({})
    d.reload()
    d.reload()
    text = d.request("GET", "/metrics").body.decode()
    assert re.search(r'^cliproxyd_config_reloads_total\{result="success"\} 2\.0$', text, re.MULTILINE)


def test_each_app_has_its_own_registry():
    a, b = Metrics(), Metrics()
    a.observe_request("root", "GET", 200)
    a.observe_request("root", "BREW", 418)  # an unknown method becomes OTHER (bounded labels)
    text_a, text_b = a.exposition().decode(), b.exposition().decode()
    assert 'cliproxyd_http_requests_total{code="200",method="GET",route="root"} 1.0' in text_a
    assert 'method="OTHER"' in text_a and "BREW" not in text_a
    assert "cliproxyd_http_requests_total{" not in text_b
