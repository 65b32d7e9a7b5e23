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


def _raw_exchange(port, raw, until_closed=False, settle=0.5):
    """Sends raw bytes and returns what came back within `settle` seconds (or until close)."""
    import socket
    import time
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(raw)
        data = b""
        deadline = time.monotonic() + (3 if until_closed else settle)
        s.settimeout(0.1)
        while time.monotonic() < deadline:
            try:
                piece = s.recv(65536)
            except socket.timeout:
                continue
            if not piece:
                break
            data += piece
        return data


def _head_fields(head):
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], fields


def test_response_heads_are_framed_exactly(server):
    # The heads are written by hand (http/server.cpp ResponseHead): check the wire.
    data = _raw_exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    status, fields = _head_fields(head)
    assert status == "HTTP/1.1 200 OK", status
    assert fields["content-length"] == [str(len(body))], (fields, body)
    assert len(fields["date"]) == 1 and fields["date"][0].endswith("GMT"), fields
    assert fields["server"] == ["chatd"], fields
    assert "connection" not in fields and "transfer-encoding" not in fields, fields
    assert json.loads(body)["status"] == "healthy"


def test_head_announces_the_length_without_a_body(server):
    get_body = get(server.port, "/health").body
    # A HEAD then a GET on one connection: no body bytes after the HEAD's head, or the
    # GET's response would not start where it must.
    data = _raw_exchange(server.port, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
                                      b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    first, _, rest = data.partition(b"\r\n\r\n")
    status, fields = _head_fields(first)
    assert status == "HTTP/1.1 200 OK", status
    assert int(fields["content-length"][0]) == len(get_body), fields
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest[:80]


def test_no_content_has_no_length_or_body(server):
    data = _raw_exchange(server.port, b"OPTIONS /health HTTP/1.1\r\nHost: x\r\n\r\n"
                                      b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    first, _, rest = data.partition(b"\r\n\r\n")
    status, fields = _head_fields(first)
    assert status.startswith("HTTP/1.1 204"), status
    assert "content-length" not in fields and "transfer-encoding" not in fields, fields
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest[:80]


def test_http10_keepalive_is_kept_and_said(server):
    data = _raw_exchange(server.port, b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head, _, _ = data.partition(b"\r\n\r\n")
    status, fields = _head_fields(head)
    assert status == "HTTP/1.0 200 OK", status
    assert [v.lower() for v in fields.get("connection", [])] == ["keep-alive"], fields


def test_connection_close_is_said_in_the_response(server):
    data = _raw_exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                         until_closed=True)
    head, _, _ = data.partition(b"\r\n\r\n")
    _, fields = _head_fields(head)
    assert [v.lower() for v in fields.get("connection", [])] == ["close"], fields
