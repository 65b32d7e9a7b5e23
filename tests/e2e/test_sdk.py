"""The official SDKs as black-box clients of chatd's /v1 (tests/e2e/sdk/*.test.mjs, node:test).

chatd runs with the mock upstream behind it (OPENAI_BASE_URL → bench/mock_upstream, its
models discovered) and the built-in demo models; a user and API keys are made through the
REST API; then node runs the SDK suite against http://127.0.0.1:<port>/v1. The SDK packages
are installed by scripts/test-e2e (npm ci into tests/e2e/sdk/node_modules).
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from accounts_client import Api
from chatd_testing import MockUpstream, ServerFactory

SDK_DIR = Path(__file__).resolve().parent / "sdk"
NODE = shutil.which("node") or "/usr/bin/node"


@pytest.fixture(scope="module")
def stack(binary, tmp_path_factory):
    if not (SDK_DIR / "node_modules" / "openai").is_dir():
        pytest.fail("the SDKs are not installed: run scripts/test-e2e (npm ci in tests/e2e/sdk)", pytrace=False)
    mock = MockUpstream(binary.parent / "mock_upstream")
    factory = ServerFactory(binary, tmp_path_factory)
    try:
        srv = factory(OPENAI_API_KEY="sk-upstream-not-real", OPENAI_BASE_URL=mock.base_url, LLM_RETRIES="0",
                      LLM_CIRCUIT_BREAKER_FAILURES="0", DEMO_TOKEN_INTERVAL="1ms")
        yield srv, mock
    finally:
        factory.stop_all()  # checks chatd exits 0 with no sanitizer reports
        mock.stop()


def sdk_env(srv, mock) -> dict[str, str]:
    api = Api(srv.port)
    user = api.new_user(prefix="sdk")
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(SDK_DIR),
        "CHATD_BASE_URL": f"http://127.0.0.1:{srv.port}/v1",
        "CHATD_ROOT_URL": f"http://127.0.0.1:{srv.port}",
        "CHATD_KEY": user.new_key(name="sdk")["key"],
        "CHATD_CHAT_ONLY_KEY": user.new_key(name="chat only", scopes=["chat"])["key"],
        # Keys with limits (gateway::KeyLimiter): each suite gets fresh ones.
        "CHATD_RPM_KEY": user.new_key(name="2 a minute", limits={"rpm_limit": 2})["key"],
        "CHATD_DEMO_ONLY_KEY": user.new_key(name="demo only", limits={"allowed_models": ["demo"]})["key"],
        "CHATD_BUDGET_KEY": user.new_key(
            name="60 tokens a day", limits={"budget": {"amount": 60, "unit": "tokens", "period": "day"}})["key"],
        "MOCK_URL": f"http://127.0.0.1:{mock.port}",
    }


def run_suite(name: str, env: dict[str, str], min_passed: int) -> None:
    run = subprocess.run([NODE, "--test", "--test-reporter=spec", name], cwd=SDK_DIR, env=env,
                         capture_output=True, text=True, timeout=300)
    print(run.stdout)
    print(run.stderr)
    assert run.returncode == 0, f"node --test failed:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
    # node's summary: every test that is not skipped for a stated reason passed.
    summary = dict(re.findall(r"^ℹ (\w+) (\d+)$", run.stdout, re.M))
    assert summary.get("fail") == "0" and int(summary.get("pass", 0)) >= min_passed, run.stdout[-2000:]


def test_anthropic_sdk(stack):
    srv, mock = stack
    run_suite("anthropic.test.mjs", sdk_env(srv, mock), 6)


def test_openai_sdk(stack):
    srv, mock = stack
    run_suite("openai.test.mjs", sdk_env(srv, mock), 11)
