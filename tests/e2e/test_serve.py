"""`chatd serve` from the outside: a real HTTP client, graceful shutdown."""

import shutil
import signal
import subprocess
import time

import pytest

from chatd_testing import Conn, Server, server_env


@pytest.fixture
def serve(binary, tmp_path):
    data = tmp_path / "data"
    srv = Server.start(data, server_env(data, None), binary)
    yield srv
    srv.kill()


@pytest.mark.skipif(not shutil.which("curl"), reason="curl not installed")
def test_curl_health(serve):
    r = subprocess.run(["curl", "-sS", "-i", "--max-time", "5",
                        f"http://127.0.0.1:{serve.port}/health"],
                       capture_output=True, timeout=10)
    assert r.returncode == 0, r
    head, _, body = r.stdout.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    assert '"healthy"' in body


def test_sigterm_exits_zero_and_closes_idle_connections(serve):
    keepalive = Conn(serve.port)
    fresh = Conn(serve.port)  # connected, never sent a byte
    try:
        r = keepalive.request("GET", "/health")
        assert r.status == 200
        assert "close" not in r.headers.tokens("connection")

        start = time.monotonic()
        serve.proc.send_signal(signal.SIGTERM)
        closed_at = keepalive.wait_closed(5)
        assert closed_at is not None, "idle keep-alive connection not closed during shutdown"
        assert fresh.wait_closed(5) is not None
        rc = serve.proc.wait(5)
        elapsed = time.monotonic() - start
        assert rc == 0, f"exit code {rc}; log:\n{serve.log()}"
        assert elapsed < 5, f"shutdown took {elapsed:.1f}s"
        assert not serve.sanitizer_reports(), serve.log()
    finally:
        keepalive.close()
        fresh.close()


def test_sigterm_stops_listening(serve):
    port = serve.port
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(5) == 0, serve.log()
    with pytest.raises(ConnectionRefusedError):
        Conn(port, timeout=2)
