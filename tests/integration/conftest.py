"""Fixtures for the integration suite: the real chatd binary on a free port.

CHATD_BIN               the binary (default build/dev/chatd)
CHATD_TEST_DATABASE_URL a PostgreSQL admin URL; when set, every server gets its
                        own fresh database there. Unset: SQLite in DATA_DIR.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from chatd_testing import PG_URL, PgCluster, ServerFactory, chatd_bin

def pytest_report_header(config):
    return [f"chatd: {chatd_bin()}",
            f"database: {'postgresql (' + PG_URL + ')' if PG_URL else 'sqlite'}"]


@pytest.fixture(scope="session")
def binary() -> Path:
    path = chatd_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"chatd binary not found at {path} (build it, or set CHATD_BIN)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    if not PG_URL:
        pytest.skip("PostgreSQL only")
    return PG_URL


@pytest.fixture
def make_server(binary, tmp_path_factory):
    """Factory: make_server(MAX_CONNECTIONS="100", ...) -> Server. Every server is
    stopped with SIGTERM at teardown and must exit 0."""
    factory = ServerFactory(binary, tmp_path_factory, PG_URL)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def server(binary, tmp_path_factory):
    """One default-config server shared by the tests that only read from it."""
    factory = ServerFactory(binary, tmp_path_factory, PG_URL)
    srv = factory()
    yield srv
    factory.stop_all()


@pytest.fixture
def private_pg():
    """A PostgreSQL cluster of the test's own (for tests that stop it)."""
    if not PG_URL:
        pytest.skip("PostgreSQL only")
    if not shutil.which("psql"):
        pytest.skip("psql not installed")
    cluster = PgCluster()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def accounts_server(binary, tmp_path_factory):
    """One server for the accounts tests, with an ADMIN_EMAIL/ADMIN_PASSWORD admin
    (accounts_client.ADMIN_EMAIL) and the test SECRET_KEY. Tests create their own
    users with unique emails, so they can share it."""
    from accounts_client import ADMIN_EMAIL, ADMIN_PASSWORD

    factory = ServerFactory(binary, tmp_path_factory, PG_URL)
    srv = factory(ADMIN_EMAIL=ADMIN_EMAIL, ADMIN_PASSWORD=ADMIN_PASSWORD)
    yield srv
    factory.stop_all()


@pytest.fixture
def api(accounts_server):
    """accounts_client.Api on the shared accounts server."""
    from accounts_client import Api

    return Api(accounts_server.port)


@pytest.fixture(scope="module")
def module_servers(binary, tmp_path_factory):
    """Factory like make_server, but the servers live until the end of the module."""
    factory = ServerFactory(binary, tmp_path_factory, PG_URL)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def mock():
    """bench/mock_upstream, one per test module (chatd_testing.MockUpstream)."""
    from chatd_testing import MockUpstream

    upstream = MockUpstream()
    yield upstream
    upstream.stop()


@pytest.fixture
def upstream(mock):
    """The module's mock upstream, with its script and counters reset for this test."""
    mock.reset()
    return mock


@pytest.fixture(scope="module")
def gw(module_servers, mock):
    """chatd in front of the module's mock (its models discovered) and the demo models; no
    retries, so scripted failures reach the client as they are (gateway suites)."""
    return module_servers(OPENAI_API_KEY="sk-upstream-secret", OPENAI_BASE_URL=mock.base_url,
                          LLM_MODEL="mock-model", LLM_RETRIES="0", LLM_IDLE_TIMEOUT="1500ms",
                          LLM_CIRCUIT_BREAKER_FAILURES="0", DEMO_TOKEN_INTERVAL="0ms")
