"""Back-pressure: body limits, header/keep-alive timeouts, connection caps."""

import resource
import select
import socket
import time

import pytest

from chatd_testing import Conn, assert_error_json, get, is_closed_error

MB = 1024 * 1024


def test_oversized_content_length_rejected_before_body(server):
    with Conn(server.port, timeout=5) as c:
        start = time.monotonic()
        c.send(b"POST /api/v1/anything HTTP/1.1\r\n"
               b"Host: 127.0.0.1\r\n"
               b"Content-Type: application/json\r\n"
               b"Content-Length: 2097152\r\n\r\n")
        # No body is sent: an answer at all proves the server did not wait for it.
        r = c.read_response(timeout=2)
        assert time.monotonic() - start < 2
        assert_error_json(r, 413)
        assert c.wait_closed(3) is not None, "connection left open after 413"


def test_oversized_content_length_rejected_on_known_route(server):
    with Conn(server.port, timeout=5) as c:
        c.send(b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2097152\r\n\r\n")
        r = c.read_response(timeout=2)
        assert_error_json(r, 413)


def test_max_body_size_is_configurable(make_server):
    srv = make_server(MAX_BODY_SIZE="1KB")
    with Conn(srv.port) as c:
        c.send(b"POST /api/v1/anything HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Length: 2048\r\n\r\n")
        assert_error_json(c.read_response(timeout=2), 413)
    with Conn(srv.port) as c:  # under the limit: routed normally
        r = c.request("POST", "/api/v1/anything", body=b"x" * 1000)
        assert_error_json(r, 404)


def test_oversized_chunked_body_rejected(server):
    chunk = b"x" * 65536
    frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    sent = 0
    with Conn(server.port, timeout=5) as c:
        c.send(b"POST /api/v1/anything HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/octet-stream\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        c.sock.settimeout(1.0)
        try:
            while sent < 2 * MB:
                c.sock.sendall(frame)
                sent += len(chunk)
                # The server may answer (and stop reading) before we are done.
                if select.select([c.sock], [], [], 0)[0]:
                    break
            else:
                c.sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        try:
            r = c.read_response(timeout=5)
        except ConnectionResetError as e:
            pytest.fail(f"connection reset before the 413 could be read (server should "
                        f"close gracefully); sent {sent} bytes: {e}")
        assert_error_json(r, 413)
        assert sent <= 2 * MB
        assert c.wait_closed(3) is not None, "connection left open after 413"


def test_body_to_unknown_route_is_consumed_and_keepalive_works(server):
    with Conn(server.port, timeout=5) as c:
        r = c.request("POST", "/api/v1/anything", headers={"Content-Type": "text/plain"},
                      body=b"y" * (100 * 1024))
        assert_error_json(r, 404)
        r2 = c.request("GET", "/health")
        assert r2.status == 200, r2
        # and a chunked body of modest size, on the same connection
        body = b"5\r\nhello\r\n0\r\n\r\n"
        r3 = c.request("POST", "/api/v1/anything", headers={"Transfer-Encoding": "chunked"},
                       body=body)
        assert_error_json(r3, 404)
        assert c.request("GET", "/ready").status == 200


@pytest.mark.slow
def test_slow_headers_are_cut_off(make_server):
    srv = make_server(HEADER_TIMEOUT="2s")
    payload = b"GET /health HTTP/1.1\r\n"
    slow = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    t0 = time.monotonic()
    closed_at = None
    served_meanwhile = 0
    try:
        for i, byte in enumerate(payload):
            try:
                slow.sendall(bytes([byte]))
            except OSError as e:
                if not is_closed_error(e):
                    raise
                closed_at = time.monotonic()
                break
            # Other clients are served while the slow one dribbles.
            r = get(srv.port, "/health", timeout=2)
            assert r.status == 200, r
            served_meanwhile += 1
            # Watch the slow connection until the next byte is due (one per second).
            next_byte_at = t0 + i + 1
            while (remaining := next_byte_at - time.monotonic()) > 0:
                if not select.select([slow], [], [], remaining)[0]:
                    break
                try:
                    data = slow.recv(4096)  # a 408 response is fine; wait for the close
                except OSError as e:
                    if not is_closed_error(e):
                        raise
                    data = b""
                if not data:
                    closed_at = time.monotonic()
                    break
            if closed_at is not None:
                break
            if time.monotonic() - t0 > 6:
                break
    finally:
        slow.close()
    assert closed_at is not None, "slow-headers connection still open after 6 s"
    elapsed = closed_at - t0
    assert 1.5 <= elapsed <= 4.0, f"closed after {elapsed:.2f}s, want 1.5-4 s (HEADER_TIMEOUT=2s)"
    assert served_meanwhile >= 1


def _raise_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {want}")
    if soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _open_idle(port: int, n: int) -> list[socket.socket]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(("127.0.0.1", port))
            socks.append(s)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        sock.setblocking(False)
        data = sock.recv(1)
    except BlockingIOError:
        return False
    except OSError as e:
        return is_closed_error(e)
    return data == b""


@pytest.mark.slow
def test_many_idle_connections_do_not_block_new_clients(make_server):
    n = 5000
    _raise_nofile(n + 500)
    srv = make_server()
    socks = _open_idle(srv.port, n)
    try:
        start = time.monotonic()
        r = get(srv.port, "/health", timeout=2)
        assert r.status == 200, r
        assert time.monotonic() - start < 2
    finally:
        for s in socks:
            s.close()
    # and the server is still fine after they all go away
    assert get(srv.port, "/ready").status == 200


@pytest.mark.slow
def test_connection_cap_evicts_longest_idle(make_server):
    cap, n = 100, 300
    _raise_nofile(n + 200)
    srv = make_server(MAX_CONNECTIONS=str(cap))
    socks = _open_idle(srv.port, n)
    try:
        start = time.monotonic()
        r = get(srv.port, "/health", timeout=2)
        assert r.status == 200, r
        assert time.monotonic() - start < 2

        def enough_evicted():
            closed = [i for i, s in enumerate(socks) if _closed_by_server(s)]
            return closed if len(closed) >= n - cap else None

        deadline = time.monotonic() + 5
        closed = None
        while time.monotonic() < deadline and closed is None:
            closed = enough_evicted()
            if closed is None:
                time.sleep(0.1)
        count = len(closed) if closed else len(
            [s for s in socks if _closed_by_server(s)])
        assert closed is not None, (
            f"only {count} of {n} idle connections closed with MAX_CONNECTIONS={cap}; "
            f"want >= {n - cap}")
        # the longest-idle (first opened) ones go first
        assert 0 in closed, "the oldest idle connection was not evicted"
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
def test_keepalive_timeout_closes_idle_connection(make_server):
    srv = make_server(KEEPALIVE_TIMEOUT="2s")
    with Conn(srv.port) as c:
        r = c.request("GET", "/health")
        assert r.status == 200
        idle_from = time.monotonic()
        closed_at = c.wait_closed(6)
        assert closed_at is not None, "idle keep-alive connection still open after 6 s"
        idle = closed_at - idle_from
        assert 1.5 <= idle <= 4.0, f"closed after {idle:.2f}s idle, want ~2-4 s"


def test_keepalive_connection_survives_short_idle(make_server):
    srv = make_server(KEEPALIVE_TIMEOUT="3s")
    with Conn(srv.port) as c:
        assert c.request("GET", "/health").status == 200
        assert c.wait_closed(0.5) is None, "keep-alive connection closed after < 0.5 s idle"
        assert c.request("GET", "/ready").status == 200
