"""PostgreSQL-only behaviour: outage and recovery, concurrent migrations."""

import subprocess
import threading
import time

import pytest

from chatd_testing import PG_URL, base_env, create_database, get, poll, psql

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (CHATD_TEST_DATABASE_URL unset)"),
]


def _health(port):
    r = get(port, "/health", timeout=5)
    return r.status, r.json()


@pytest.mark.slow
def test_health_follows_database_outage(private_pg, make_server):
    srv = make_server(database_url=create_database(private_pg.url))
    assert _health(srv.port) == (200, {"status": "healthy", "checks": {"database": "healthy"}})

    private_pg.stop()
    down = (503, {"status": "unhealthy", "checks": {"database": "unhealthy"}})
    poll(lambda: _health(srv.port) == down, timeout=5, interval=0.2,
         what="/health reports 503 unhealthy after PostgreSQL stopped")
    # the server itself keeps answering
    assert get(srv.port, "/ready").status == 200
    assert get(srv.port, "/metrics").status == 200
    assert _health(srv.port) == down

    private_pg.start()
    poll(lambda: _health(srv.port)[0] == 200, timeout=10, interval=0.2,
         what="/health back to 200 after PostgreSQL restarted")
    assert _health(srv.port) == (200, {"status": "healthy", "checks": {"database": "healthy"}})
    assert srv.proc.poll() is None, "chatd exited"


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_migrations_apply_each_version_once(binary, tmp_path, round_):
    url = create_database(PG_URL)
    barrier = threading.Barrier(2)
    results = [None, None]

    def run(i):
        env = base_env({"DATABASE_URL": url, "DATA_DIR": str(tmp_path / f"d{i}"),
                        "LOG_FORMAT": "json"})
        barrier.wait()
        results[i] = subprocess.run([str(binary), "migrate"], env=env, capture_output=True,
                                    text=True, timeout=60, stdin=subprocess.DEVNULL,
                                    cwd=tmp_path)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert time.monotonic() - start < 90
    for r in results:
        assert r is not None and r.returncode == 0, (
            f"migrate exited {r and r.returncode}; stderr:\n{r and r.stderr}")

    rows = psql(url, "SELECT version, count(*) FROM schema_migrations GROUP BY version "
                     "ORDER BY version")
    assert rows, "schema_migrations is empty after migrate"
    dup = [row for row in rows if row[1] != "1"]
    assert not dup, f"versions applied more than once: {dup} (all: {rows})"
