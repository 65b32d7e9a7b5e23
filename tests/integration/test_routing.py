"""Routing in the gateway: a public model on two deployments (two bench/mock_upstream
processes behind the providers "east" and "west" of a MODELS_FILE), the calls split by
weight or by how busy each is, failover to the other deployment before the model's
fallbacks, a deployment skipped while its breaker is open, aliases, and a model's own
retries and timeouts over its provider's.

Each test has a model of its own, so the balancers' state (round-robin position, breakers)
of one test does not leak into another's counts.
"""

import json
import subprocess
import textwrap
import time

import pytest

from accounts_client import Api
from chatd_testing import MockUpstream, poll, server_env
from test_gateway import HELLO, chat, events, open_stream


@pytest.fixture(scope="module")
def west_mock():
    """A second mock upstream for the module (the conftest's `mock` is "east")."""
    upstream = MockUpstream()
    yield upstream
    upstream.stop()


@pytest.fixture
def east(upstream):
    return upstream


@pytest.fixture
def west(west_mock):
    west_mock.reset()
    return west_mock


@pytest.fixture(scope="module")
def routed(module_servers, mock, west_mock, tmp_path_factory):
    """chatd with both mocks as providers (no retries, so one scripted failure is one
    failed call) and one model per test."""
    path = tmp_path_factory.mktemp("routing") / "models.toml"
    path.write_text(textwrap.dedent(f"""\
        [[providers]]
        name = "east"
        base_url = "{mock.base_url}"
        retries = 0
        circuit_breaker_failures = 0

        [[providers]]
        name = "west"
        base_url = "{west_mock.base_url}"
        retries = 0
        circuit_breaker_failures = 0

        [[providers]]
        name = "east-fragile"                # east again, with a breaker that opens at once
        base_url = "{mock.base_url}"
        retries = 0
        circuit_breaker_failures = 1
        circuit_breaker_cooldown = "60s"

        [[models]]
        name = "split"
        deployments = [
          {{ provider = "east", upstream_model = "mock-model", weight = 3 }},
          {{ provider = "west", upstream_model = "mock-west", weight = 1 }},
        ]
        aliases = ["split-latest"]

        [[models]]
        name = "failover"
        deployments = [{{ provider = "east" }}, {{ provider = "west" }}]
        fallbacks = ["demo"]

        [[models]]
        name = "guarded"
        deployments = [{{ provider = "east-fragile" }}, {{ provider = "west" }}]

        [[models]]
        name = "busy"
        deployments = [{{ provider = "east" }}, {{ provider = "west" }}]
        balance = "least_busy"

        [[providers]]
        name = "east-retrying"               # east again, retrying twice
        base_url = "{mock.base_url}"
        retries = 2
        circuit_breaker_failures = 0

        [[models]]
        name = "sturdy"                      # the provider's 2 retries
        provider = "east-retrying"
        upstream_model = "mock-model"

        [[models]]
        name = "brittle"                     # its own: none
        provider = "east-retrying"
        upstream_model = "mock-model"
        retries = 0

        [[models]]
        name = "hasty"                       # gives up on a silent upstream sooner than LLM_IDLE_TIMEOUT
        provider = "east"
        upstream_model = "mock-model"
        idle_timeout = "300ms"
        """))
    return module_servers(MODELS_FILE=str(path), DEMO_TOKEN_INTERVAL="0ms", LLM_RETRY_BACKOFF="10ms",
                          LLM_IDLE_TIMEOUT="30s")


@pytest.fixture(scope="module")
def key(routed):
    return Api(routed.port).new_user().new_key(name="routing")["key"]


def complete(srv, key, model, **body):
    r = chat(Api(srv.port), key, {"model": model, "messages": HELLO, **body})
    assert r.status == 200, r
    return r.json()


def test_calls_split_by_weight(routed, key, east, west):
    for _ in range(8):  # two cycles of 3 + 1: exact whatever the round-robin's position
        complete(routed, key, "split")
    assert east.stats()["models"] == ["mock-model"] * 6
    assert west.stats()["models"] == ["mock-west"] * 2


def test_an_alias_resolves_to_its_model(routed, key, east, west):
    api = Api(routed.port)
    r = api.call("GET", "/v1/models/split-latest", token=key)
    assert r.status == 200 and r.json()["id"] == "split", r
    listed = {m["id"]: m for m in api.call("GET", "/v1/models", token=key).json()["data"]}
    assert "split" in listed and "split-latest" not in listed, listed  # aliases are not listed
    assert listed["split"]["owned_by"] == "east+west"
    complete(routed, key, "split-latest")
    assert east.stats()["requests"] + west.stats()["requests"] == 1


def test_a_500_fails_over_to_the_other_deployment_before_the_fallback(routed, key, east, west):
    east.script([{"status": 500}])  # a fresh model starts with its first deployment
    answer = complete(routed, key, "failover")
    assert answer["choices"][0]["message"]["content"].startswith("tok0 "), answer
    assert east.stats()["requests"] == 1 and west.stats()["requests"] == 1
    # Both deployments failing: then the model's fallback (the demo model) answers.
    east.script([{"status": 500}])
    west.script([{"status": 503}])
    answer = complete(routed, key, "failover")
    assert "You said" in answer["choices"][0]["message"]["content"], answer
    assert east.stats()["requests"] == 2 and west.stats()["requests"] == 2
    warned = [line for line in routed.json_logs() if line.get("msg") == "deployment failed: trying the model's next one"]
    assert warned and warned[-1]["model"] == "failover", warned


def test_a_deployment_whose_breaker_is_open_is_skipped(routed, key, east, west):
    east.script([{"status": 500}])  # opens east-fragile's breaker; the call fails over to west
    complete(routed, key, "guarded")
    assert east.stats()["requests"] == 1 and west.stats()["requests"] == 1
    for _ in range(4):  # equal weights, but east-fragile is skipped for its cool-down
        complete(routed, key, "guarded")
    assert east.stats()["requests"] == 1 and west.stats()["requests"] == 5


def test_least_busy_sends_calls_to_the_idle_deployment(routed, key, east, west):
    east.script([{"chunks": 400, "interval_ms": 50}])  # a fresh model starts with east
    held = open_stream(routed.port, key, {"model": "busy", "messages": HELLO, "stream": True})
    try:
        assert east.stats()["active_streams"] == 1
        for _ in range(3):
            complete(routed, key, "busy")
        assert west.stats()["requests"] == 3 and east.stats()["requests"] == 1
    finally:
        held.close()
    poll(lambda: east.stats()["abandoned"] == 1, timeout=2, interval=0.02, what="the held stream ended")
    # Once chatd has let go of the stream, east is as idle as west and gets calls again.
    poll(lambda: complete(routed, key, "busy") and east.stats()["requests"] == 2, timeout=3, interval=0.02,
         what="a call on east after its stream ended")


def test_a_models_own_retries_replace_its_providers(routed, key, east):
    east.script([{"status": 500}])
    complete(routed, key, "sturdy")  # retried by its provider
    assert east.stats()["requests"] == 2
    east.script([{"status": 500}])
    r = chat(Api(routed.port), key, {"model": "brittle", "messages": HELLO})
    assert r.status == 502, r  # the same provider, but the model says no retries
    assert east.stats()["requests"] == 3


def test_a_models_own_idle_timeout_replaces_its_providers(routed, key, east):
    east.script([{"stall_after": 2}])
    started = time.monotonic()
    r = chat(Api(routed.port), key, {"model": "hasty", "messages": HELLO, "stream": True}, timeout=10)
    took = time.monotonic() - started
    err = json.loads(events(r)[-1])["error"]
    assert err["code"] == "upstream_timeout" and "within 300 ms" in err["message"], err
    assert took < 3, took  # the model's 300 ms, not LLM_IDLE_TIMEOUT's 30 s


@pytest.mark.parametrize("models, complaint", [
    ('deployments = [{ provider = "p" }, { provider = "nowhere" }]', "model 'm' names provider 'nowhere'"),
    ('deployments = [{ provider = "p", weight = 0 }]', "model 'm': deployments[0]: weight must be a whole number"),
    ('provider = "p"\ndeployments = [{ provider = "p" }]', "not both"),
    ('deployments = [{ provider = "p" }]\nbalance = "random"', "balance 'random' is not known"),
    ('provider = "p"\naliases = ["demo"]', "model 'm': aliases: model name 'demo' is already registered"),
    ('provider = "p"\nretries = -1', "model 'm': retries must be a whole number from 0 to 10"),
])
def test_a_bad_routing_entry_stops_chatd_at_start(binary, tmp_path, models, complaint):
    path = tmp_path / "models.toml"
    path.write_text(f'[[providers]]\nname = "p"\nbase_url = "http://127.0.0.1:9/v1"\n\n'
                    f'[[models]]\nname = "m"\n{models}\n')
    env = server_env(tmp_path / "data", None, {"MODELS_FILE": str(path)})
    out = subprocess.run([str(binary), "serve"], env=env, capture_output=True, text=True, timeout=20,
                         stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert out.returncode == 2, out
    assert complaint in out.stderr, out.stderr
