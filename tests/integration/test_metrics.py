"""/metrics in the Prometheus text exposition format."""

import re

from chatd_testing import get

SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\d+)?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str):
    """-> (samples: list of (name, labels dict, value float), types: {name: type})"""
    samples, types = [], {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        m = SAMPLE.match(line)
        assert m, f"not a valid exposition line: {line!r}"
        labels = dict(LABEL.findall(m.group("labels") or ""))
        samples.append((m.group("name"), labels, float(m.group("value"))))
    return samples, types


def find(samples, name, **labels):
    return [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]


def test_metrics_exposition(make_server):
    srv = make_server()
    n = 5
    for _ in range(n):
        assert get(srv.port, "/health").status == 200
    # a path that may become a real route (with an id in it) and one that never will
    assert get(srv.port, "/api/v1/conversations/123").status in (401, 404)
    assert get(srv.port, "/definitely/not/a/route/42").status == 404

    r = get(srv.port, "/metrics")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/plain"), r
    text = r.body.decode()
    samples, types = parse_exposition(text)

    # counter with the route template, never the raw path
    ok = find(samples, "http_requests_total", method="GET", route="/health", status="200")
    assert ok and ok[0] >= n, f"http_requests_total for GET /health 200: {ok}\n{text}"
    assert types.get("http_requests_total") == "counter", types
    assert "/api/v1/conversations/123" not in text, text
    assert "/definitely/not" not in text, text
    unmatched = find(samples, "http_requests_total", route="unmatched", status="404")
    assert unmatched and unmatched[0] >= 1, text
    routes = {l.get("route") for name, l, _ in samples if name == "http_requests_total"}
    assert all(r_ == "unmatched" or r_.startswith("/") for r_ in routes), routes

    # histogram
    assert types.get("http_request_duration_seconds") == "histogram", types
    inf = find(samples, "http_request_duration_seconds_bucket", route="/health", le="+Inf")
    assert inf and inf[0] >= n, text
    count = find(samples, "http_request_duration_seconds_count", route="/health")
    assert count and count[0] == inf[0], text
    assert find(samples, "http_request_duration_seconds_sum", route="/health"), text

    # gauges and process metrics
    for name in ("http_requests_in_flight", "process_resident_memory_bytes",
                 "process_cpu_seconds_total", "process_open_fds", "db_pool_size",
                 "db_pool_checked_out"):
        assert find(samples, name), f"{name} missing from /metrics:\n{text}"
    assert find(samples, "process_resident_memory_bytes")[0] > 1024 * 1024
    assert find(samples, "process_open_fds")[0] >= 3
    assert find(samples, "process_cpu_seconds_total")[0] >= 0
    assert find(samples, "db_pool_size")[0] >= 1
    assert 0 <= find(samples, "db_pool_checked_out")[0] <= find(samples, "db_pool_size")[0]
    assert find(samples, "http_requests_in_flight")[0] >= 0


def test_metrics_counts_grow(make_server):
    srv = make_server()

    def count():
        samples, _ = parse_exposition(get(srv.port, "/metrics").body.decode())
        v = find(samples, "http_requests_total", method="GET", route="/ready", status="200")
        return v[0] if v else 0

    before = count()
    for _ in range(3):
        assert get(srv.port, "/ready").status == 200
    assert count() == before + 3


def test_chat_metrics(make_server):
    from accounts_client import Api
    from test_chat_turn import conversation, send

    srv = make_server()
    api = Api(srv.port)
    user = api.new_user()
    cid = conversation(api, user)
    assert send(api, user, cid, {"content": "count me", "stream": False, "max_tokens": 5}).status == 200
    assert send(api, user, cid, {"content": "fail me", "model": "demo-error", "stream": False}).status == 200
    samples, types = parse_exposition(get(srv.port, "/metrics").body.decode())
    assert find(samples, "chat_messages_processed_total") == [2.0]
    assert find(samples, "llm_requests_total", provider="demo", model="demo", status="ok") == [1.0]
    assert find(samples, "llm_requests_total", provider="demo", model="demo-error", status="error") == [1.0]
    assert find(samples, "llm_tokens_total", type="completion") == [5.0]
    assert find(samples, "llm_tokens_total", type="prompt")[0] > 0
    assert find(samples, "llm_time_to_first_token_seconds_count", model="demo") == [1.0]
    assert find(samples, "llm_request_duration_seconds_count", model="demo-error") == [1.0]
    assert find(samples, "sse_active_streams") == [0.0]
    assert find(samples, "websocket_active_connections") == [0.0]
    for name, kind in [("chat_messages_processed_total", "counter"), ("llm_tokens_total", "counter"),
                       ("llm_time_to_first_token_seconds", "histogram"), ("sse_active_streams", "gauge")]:
        assert types[name] == kind
