"""Helpers to run the chatd binary and talk raw HTTP/1.1 to it (stdlib only).

Used by tests/integration and tests/e2e. Nothing here sleeps to synchronise:
every wait is a poll with a deadline.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_TEST_SERVER = REPO_ROOT / "scripts" / "pg-test-server"

# A PostgreSQL admin URL (scripts/test-integration sets it); empty: SQLite run.
PG_URL = os.environ.get("CHATD_TEST_DATABASE_URL", "")

STARTUP_DEADLINE = 20.0
SHUTDOWN_DEADLINE = 10.0

# Variables chatd reads; never inherited from the caller's environment so that a
# developer's shell (or CI's) cannot change what a test sees.
_CHATD_VARS = {
    "HOST", "PORT", "DATA_DIR", "DATABASE_URL", "DATABASE_READ_URL", "WORKERS",
    "LOG_FORMAT", "LOG_LEVEL", "LOG_FILE", "ACCESS_LOG", "MAX_BODY_SIZE",
    "HEADER_TIMEOUT", "BODY_TIMEOUT", "KEEPALIVE_TIMEOUT", "MAX_CONNECTIONS",
    "CORS_ORIGINS", "ALLOWED_HOSTS", "MIGRATE_ON_START", "REDIS_URL", "SECRET_KEY",
    "ENVIRONMENT", "DB_POOL_SIZE", "DB_STATEMENT_TIMEOUT", "DB_CONNECT_TIMEOUT",
    "WRITE_TIMEOUT", "SHUTDOWN_TIMEOUT", "BLOCKING_THREADS", "API_V1_STR",
    # accounts
    "ACCESS_TOKEN_EXPIRE_MINUTES", "REFRESH_TOKEN_EXPIRE_DAYS", "ALLOW_REGISTRATION",
    "ADMIN_EMAIL", "ADMIN_PASSWORD", "RATE_LIMIT_ENABLED", "RATE_LIMIT_API",
    "RATE_LIMIT_API_BURST", "RATE_LIMIT_LOGIN", "RATE_LIMIT_LOGIN_BURST", "RATE_LIMIT_UPLOAD",
    "RATE_LIMIT_UPLOAD_BURST", "TRUSTED_PROXIES", "LOGIN_LOCKOUT_THRESHOLD",
    "LOGIN_LOCKOUT_DURATION", "ENCRYPTION_KEY", "ENCRYPTION_KEY_PREVIOUS",
}

# Every test server signs tokens with this key, so tests can forge JWTs (48 bytes).
TEST_SECRET_KEY = "chatd-integration-tests-0123456789abcdefghijklmn"
assert len(TEST_SECRET_KEY) == 48

# Defaults for every test server: most tests log in many times from 127.0.0.1, so the
# login and API rate limits are out of the way unless a test sets its own (pass a value,
# or None to leave the variable unset and get chatd's built-in default).
TEST_SERVER_DEFAULTS = {
    "SECRET_KEY": TEST_SECRET_KEY,
    "RATE_LIMIT_LOGIN": "10000/m",
    "RATE_LIMIT_LOGIN_BURST": "10000",
    "RATE_LIMIT_API": "10000/s",
    "RATE_LIMIT_API_BURST": "10000",
}
_SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                      "WARNING: ThreadSanitizer")


def chatd_bin() -> Path:
    path = Path(os.environ.get("CHATD_BIN", "build/dev/chatd"))
    if not path.is_absolute():
        path = (REPO_ROOT / path) if not path.exists() else path.resolve()
    return path


# LLM settings too: a developer's OPENAI_API_KEY must not send tests to a real upstream.
_CHATD_VAR_PREFIXES = ("LLM_", "OPENAI_", "DEEPSEEK_", "DEMO_")


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _CHATD_VARS and not k.startswith(_CHATD_VAR_PREFIXES) and k != "MODELS_FILE"}
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------- HTTP


class Headers:
    """Case-insensitive multi-map of response headers."""

    def __init__(self, items: list[tuple[str, str]]):
        self.items = items

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.items if k.lower() == name]

    def __contains__(self, name: str) -> bool:
        return bool(self.get_all(name))

    def tokens(self, name: str) -> list[str]:
        """Comma-separated header values, lower-cased and stripped."""
        return [t.strip().lower() for v in self.get_all(name) for t in v.split(",") if t.strip()]

    def __repr__(self) -> str:
        return repr(self.items)


@dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: Headers
    body: bytes
    elapsed: float = 0.0

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return (f"Response({self.version} {self.status} {self.reason}, headers={self.headers!r}, "
                f"body={self.body[:500]!r})")


class ConnectionClosed(Exception):
    pass


class Conn:
    """One client TCP connection with an HTTP/1.x response reader."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0):
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.timeout = timeout

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, target: str, headers: dict[str, str] | None = None,
                body: bytes = b"", host: str | None = None, version: str = "HTTP/1.1") -> Response:
        self.send(build_request(method, target, headers, body,
                                host if host is not None else f"127.0.0.1:{self.port}", version))
        return self.read_response(head=(method == "HEAD"))

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out reading the response")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout as e:
            raise TimeoutError("timed out reading the response") from e
        if not chunk:
            raise ConnectionClosed(f"connection closed by server; partial data {self.buf[:200]!r}")
        self.buf += chunk

    def _read_until(self, marker: bytes, deadline: float) -> bytes:
        while marker not in self.buf:
            self._fill(deadline)
        idx = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:idx], self.buf[idx:]
        return out

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, timeout: float | None = None, head: bool = False) -> Response:
        start = time.monotonic()
        deadline = start + (timeout if timeout is not None else self.timeout)
        while True:
            head_bytes = self._read_until(b"\r\n\r\n", deadline)
            lines = head_bytes.decode("latin-1").split("\r\n")
            version, status, *reason = lines[0].split(" ", 2)
            items = []
            for line in lines[1:]:
                if not line:
                    continue
                k, _, v = line.partition(":")
                items.append((k.strip(), v.strip()))
            headers = Headers(items)
            status = int(status)
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue and friends: the real response follows
            break
        body = b""
        if head or status in (204, 304):
            pass
        elif "chunked" in headers.tokens("transfer-encoding"):
            while True:
                size_line = self._read_until(b"\r\n", deadline)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    self._read_until(b"\r\n", deadline)  # (no trailers expected)
                    break
                body += self._read_exact(size, deadline)
                self._read_exact(2, deadline)
        elif "content-length" in headers:
            body = self._read_exact(int(headers.get_all("content-length")[0]), deadline)
        else:
            while True:  # body until close
                try:
                    self._fill(deadline)
                except ConnectionClosed:
                    break
            body, self.buf = self.buf, b""
        return Response(status, reason[0] if reason else "", version, headers, body,
                        time.monotonic() - start)

    def wait_closed(self, timeout: float) -> float | None:
        """Wait until the server closes the connection (EOF or RST), discarding any
        data it sends first. Returns the monotonic time of the close, or None."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], remaining)
            if not r:
                return None
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic()
            if not data:
                return time.monotonic()
            self.buf += data


def build_request(method: str, target: str, headers: dict[str, str] | None = None,
                  body: bytes = b"", host: str = "127.0.0.1", version: str = "HTTP/1.1") -> bytes:
    headers = dict(headers or {})
    lines = [f"{method} {target} {version}"]
    if not any(k.lower() == "host" for k in headers) and host:
        lines.append(f"Host: {host}")
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers):
        headers["Content-Length"] = str(len(body))
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def request(port: int, method: str, target: str, headers: dict[str, str] | None = None,
            body: bytes = b"", timeout: float = 5.0, host: str | None = None) -> Response:
    """One request on a fresh connection."""
    with Conn(port, timeout=timeout) as c:
        return c.request(method, target, headers, body, host=host)


def get(port: int, target: str, **kw) -> Response:
    return request(port, "GET", target, **kw)


def poll(fn, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Call fn() until it returns a truthy value; return it. Raises AssertionError
    with the last value / exception after the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - reported below
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout}s; last: {last!r}")
        time.sleep(interval)


def assert_error_json(resp: Response, status: int, code: str | None = None) -> dict:
    assert resp.status == status, resp
    ctype = resp.headers.get("content-type", "")
    assert ctype.startswith("application/json"), resp
    body = resp.json()
    err = body.get("error")
    assert isinstance(err, dict), body
    assert set(err) >= {"message", "type", "code", "param"}, body
    assert isinstance(err["message"], str) and err["message"], body
    if code is not None:
        assert err["code"] == code, body
    return err


# ------------------------------------------------------------------------- server

_db_counter = itertools.count()


def create_database(admin_url: str) -> str:
    """Create a uniquely named database on the PostgreSQL at admin_url and return
    a URL pointing at it."""
    name = f"chatd_t_{os.getpid()}_{next(_db_counter)}_{uuid.uuid4().hex[:8]}"
    _psql(admin_url, f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def _psql(url: str, sql: str) -> str:
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                          url, "-c", sql], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise AssertionError(f"psql {url} -c {sql!r} failed ({out.returncode}): {out.stderr}")
    return out.stdout


def psql(url: str, sql: str) -> list[list[str]]:
    """Run one statement; rows as lists of strings."""
    return [line.split("\t") for line in _psql(url, sql).splitlines() if line]


@dataclass
class Server:
    """A running `chatd serve`, with its stderr drained in a thread."""

    proc: subprocess.Popen
    data_dir: Path
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    port: int = 0
    _listening: threading.Event = field(default_factory=threading.Event)
    _drainer: threading.Thread | None = None

    @classmethod
    def start(cls, data_dir: Path, env: dict[str, str], binary: Path | None = None,
              args: list[str] | None = None, wait_ready: bool = True) -> "Server":
        """Start and wait for the "listening" log line, then (wait_ready) for
        GET /ready to answer 200: start-up work such as migrations may still be
        running when the socket is already open."""
        binary = binary or chatd_bin()
        t0 = time.monotonic()
        data_dir.mkdir(parents=True, exist_ok=True)
        stdout = open(data_dir.parent / f"{data_dir.name}.stdout", "wb")
        proc = subprocess.Popen([str(binary), *(args or ["serve"])], env=env,
                                stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=subprocess.PIPE,
                                cwd=data_dir.parent)  # no developer's ./.env leaks in
        stdout.close()
        srv = cls(proc=proc, data_dir=data_dir, env=env)
        srv._drainer = threading.Thread(target=srv._drain, daemon=True)
        srv._drainer.start()
        if not srv._listening.wait(STARTUP_DEADLINE) or not srv.port:
            srv.kill()
            raise AssertionError(
                f"chatd did not log \"listening\" within {STARTUP_DEADLINE}s "
                f"(exit code {proc.poll()}); log:\n{srv.log()}")
        if wait_ready:
            last = None
            while True:
                try:
                    last = request(srv.port, "GET", "/ready", timeout=2)
                    if last.status == 200:
                        break
                except OSError as e:
                    last = e
                if proc.poll() is not None or time.monotonic() - t0 > STARTUP_DEADLINE:
                    srv.kill()
                    raise AssertionError(
                        f"chatd /ready did not answer 200 within {STARTUP_DEADLINE}s "
                        f"(exit code {proc.poll()}); last: {last!r}; log:\n{srv.log()}")
                time.sleep(0.05)
        return srv

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if not self._listening.is_set() and '"listening"' in line:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if obj.get("msg") == "listening":
                    self.port = int(obj["port"])
                    self._listening.set()
        self._listening.set()  # EOF: wake up start() so it can report

    def log(self, last: int = 200) -> str:
        return "\n".join(self.lines[-last:])

    def json_logs(self) -> list[dict]:
        out = []
        for line in list(self.lines):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def sanitizer_reports(self) -> list[str]:
        return [l for l in self.lines if any(m in l for m in _SANITIZER_MARKERS)]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self._drainer:
            self._drainer.join(5)

    def stop(self, deadline: float = SHUTDOWN_DEADLINE) -> int:
        """SIGTERM, wait; returns the exit code (kills and raises after the deadline)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(deadline)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"chatd did not exit within {deadline}s of SIGTERM; log:\n{self.log()}")
        if self._drainer:
            self._drainer.join(5)
        return self.proc.returncode

    def stop_and_check(self) -> None:
        rc = self.stop()
        reports = self.sanitizer_reports()
        assert rc == 0 and not reports, (
            f"chatd exited with {rc} after SIGTERM (want 0); sanitizer reports: {reports}; "
            f"log:\n{self.log()}")


def server_env(data_dir: Path, database_url: str | None,
               extra: dict[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a test server: TEST_SERVER_DEFAULTS, then `extra`, where a
    None value removes the variable (chatd then uses its built-in default)."""
    env = base_env({
        "DATA_DIR": str(data_dir),
        "PORT": "0",
        "HOST": "127.0.0.1",
        "LOG_FORMAT": "json",
        "MIGRATE_ON_START": "true",
        **TEST_SERVER_DEFAULTS,
    })
    if database_url:
        env["DATABASE_URL"] = database_url
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


class ServerFactory:
    """Starts servers with fresh DATA_DIRs (and fresh PostgreSQL databases when
    pg_url is set); stop_all() stops them and fails unless each exits 0."""

    def __init__(self, binary: Path, tmp_path_factory, pg_url: str = ""):
        self.binary = binary
        self.tmp_path_factory = tmp_path_factory
        self.pg_url = pg_url
        self.servers: list[Server] = []

    def __call__(self, database_url: str | None = None, **extra: str | None) -> Server:
        """Start `chatd serve`; extra env vars as keyword arguments (None: unset it).
        database_url defaults to a fresh database (PostgreSQL run) or SQLite in DATA_DIR."""
        data_dir = self.tmp_path_factory.mktemp("chatd") / "data"
        if database_url is None and self.pg_url:
            database_url = create_database(self.pg_url)
        srv = Server.start(data_dir, server_env(data_dir, database_url, extra), self.binary)
        self.servers.append(srv)
        return srv

    def new_database(self) -> tuple[Path, str | None]:
        """A fresh DATA_DIR and database URL (None: SQLite in DATA_DIR), for tests that
        run the binary themselves."""
        data_dir = self.tmp_path_factory.mktemp("chatd") / "data"
        return data_dir, (create_database(self.pg_url) if self.pg_url else None)

    def restart(self, srv: Server) -> Server:
        """Stop srv (it must exit 0) and start a new server with the same environment,
        DATA_DIR and database."""
        srv.stop_and_check()
        self.servers.remove(srv)
        new = Server.start(srv.data_dir, srv.env, self.binary)
        self.servers.append(new)
        return new

    def kill_and_restart(self, srv: Server) -> Server:
        """SIGKILL srv (no shutdown, no final writes: a crash) and start a new server with
        the same environment, DATA_DIR and database."""
        srv.kill()
        self.servers.remove(srv)
        new = Server.start(srv.data_dir, srv.env, self.binary)
        self.servers.append(new)
        return new

    def stop_all(self) -> None:
        import pytest

        errors = []
        for srv in reversed(self.servers):
            try:
                srv.stop_and_check()
            except AssertionError as e:
                errors.append(str(e))
        self.servers.clear()
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


class MockUpstream:
    """bench/mock_upstream (built beside chatd): a scriptable OpenAI-compatible upstream
    on a free loopback port. Stopped with SIGTERM by its pid."""

    def __init__(self, binary: Path | None = None):
        binary = binary or chatd_bin().parent / "mock_upstream"
        self.proc = subprocess.Popen([str(binary), "--interval-ms", "10", "--chunks", "5"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.port = 0
        deadline = time.monotonic() + STARTUP_DEADLINE
        assert self.proc.stderr is not None
        while not self.port and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("msg") == "listening":
                self.port = int(obj["port"])
        if not self.port:
            self.stop()
            raise AssertionError("mock_upstream did not start")
        # Keep draining its stderr so it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, steps: list[dict]) -> None:
        r = request(self.port, "POST", "/_mock/script", {"Content-Type": "application/json"},
                    json.dumps(steps).encode())
        assert r.status == 204, r

    def reset(self) -> None:
        assert request(self.port, "POST", "/_mock/reset").status == 204

    def stats(self) -> dict:
        return get(self.port, "/_mock/stats").json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(SHUTDOWN_DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class PgCluster:
    """A private PostgreSQL started with scripts/pg-test-server."""

    def __init__(self):
        # Directly under /tmp: the postgres OS user must be able to reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="chatd-pg-", dir="/tmp"))
        self.url = ""

    def start(self) -> str:
        out = subprocess.run([str(PG_TEST_SERVER), "start", str(self.dir)], check=True,
                             capture_output=True, text=True, timeout=60)
        self.url = out.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self) -> None:
        subprocess.run([str(PG_TEST_SERVER), "stop", str(self.dir)], check=True,
                       capture_output=True, timeout=60)

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            subprocess.run(["rm", "-rf", str(self.dir)], check=False)


def is_closed_error(e: BaseException) -> bool:
    return isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionClosed)) or (
        isinstance(e, OSError) and e.errno in (errno.ECONNRESET, errno.EPIPE))
