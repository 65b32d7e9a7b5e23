"""Health, errors, request ids, standard headers, keep-alive."""

import json
import re

from chatd_testing import Conn, assert_error_json, get, request

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
SANE_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # visible ASCII, no spaces or controls


def test_health_is_healthy(server):
    r = get(server.port, "/health")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    assert r.json() == {"status": "healthy", "checks": {"database": "healthy"}}


def test_ready(server):
    r = get(server.port, "/ready")
    assert r.status == 200, r
    assert r.json() == {"status": "ready"}


def test_unknown_route_is_404_json(server):
    r = get(server.port, "/no/such/route")
    err = assert_error_json(r, 404, "not_found")
    assert err["type"] == "not_found_error"
    assert err["param"] is None


def test_wrong_method_is_405_with_allow(server):
    r = request(server.port, "POST", "/health", headers={"Content-Type": "application/json"},
                body=b"{}")
    assert_error_json(r, 405, "method_not_allowed")
    assert "get" in r.headers.tokens("allow"), r


def test_request_id_echoed_when_sane(server):
    r = get(server.port, "/health", headers={"X-Request-ID": "abc-123"})
    assert r.status == 200
    assert r.headers.get_all("x-request-id") == ["abc-123"], r


def test_request_id_generated_when_absent(server):
    ids = set()
    for _ in range(3):
        r = get(server.port, "/health")
        rid = r.headers.get("x-request-id")
        assert rid and SANE_ID.match(rid), r
        ids.add(rid)
    assert len(ids) == 3, f"generated request ids are not unique: {ids}"


def test_request_id_replaced_when_too_long(server):
    sent = "a" * 129
    r = get(server.port, "/health", headers={"X-Request-ID": sent})
    rid = r.headers.get("x-request-id")
    assert rid and rid != sent and SANE_ID.match(rid), r
    # 128 characters is still acceptable
    ok = "b" * 128
    assert get(server.port, "/health", headers={"X-Request-ID": ok}).headers.get(
        "x-request-id") == ok


def test_request_id_replaced_when_it_has_control_chars(server):
    sent = "abc\tdef"  # HTAB is legal in a header value, but not in a request id
    r = get(server.port, "/health", headers={"X-Request-ID": sent})
    rid = r.headers.get("x-request-id")
    assert rid and rid != sent and SANE_ID.match(rid), r


def test_standard_headers_on_every_response(server):
    responses = [
        get(server.port, "/health"),
        get(server.port, "/ready"),
        get(server.port, "/metrics"),
        get(server.port, "/nope"),
        request(server.port, "POST", "/health", body=b"x"),
    ]
    for r in responses:
        assert SANE_ID.match(r.headers.get("x-request-id") or ""), r
        pt = r.headers.get("x-process-time") or ""
        assert re.fullmatch(r"\d+(\.\d+)?", pt), f"X-Process-Time {pt!r}: {r}"
        assert 0 <= float(pt) < 5, r
        for name, value in SECURITY_HEADERS.items():
            assert r.headers.get(name) == value, f"{name}: {r}"


def test_hundred_requests_on_one_connection(server):
    with Conn(server.port) as c:
        for i in range(100):
            r = c.request("GET", "/health" if i % 2 else "/ready",
                          headers={"X-Request-ID": f"ka-{i}"})
            assert r.status == 200, (i, r)
            assert r.headers.get("x-request-id") == f"ka-{i}"
            assert "close" not in r.headers.tokens("connection"), (i, r)


def test_http10_without_keepalive_is_closed(server):
    with Conn(server.port) as c:
        c.send(b"GET /health HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["status"] == "healthy"
        assert c.wait_closed(3) is not None, "server kept an HTTP/1.0 connection open"


def test_connection_close_is_honoured(server):
    with Conn(server.port) as c:
        r = c.request("GET", "/ready", headers={"Connection": "close"})
        assert r.status == 200
        assert c.wait_closed(3) is not None, "server ignored Connection: close"


def test_json_logs_are_one_object_per_line(make_server):
    srv = make_server()  # fresh: start-up (migrations included) logs are in its output
    r = get(srv.port, "/health", headers={"X-Request-ID": "log-check-1"})
    assert r.status == 200
    srv.stop_and_check()
    bad = []
    for line in srv.lines:
        try:
            obj = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if not (isinstance(obj, dict) and {"ts", "level", "msg"} <= set(obj)):
            bad.append(line)
    assert not bad, f"LOG_FORMAT=json but these stderr lines are not JSON log objects: {bad[:10]}"
    msgs = [json.loads(l).get("msg") for l in srv.lines]
    assert "listening" in msgs
    # the access log line of our request carries its request id
    assert any("log-check-1" in l for l in srv.lines), srv.log()
