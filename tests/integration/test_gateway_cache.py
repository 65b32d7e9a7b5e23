"""The gateway's exact-match response cache (GATEWAY_CACHE) on /v1/chat/completions, in front
of bench/mock_upstream: which requests it answers (the mock counts the calls that reach it),
the x-chatd-cache header, scoping by API key, the keys' response_cache opt-out, expiry,
the off-by-default server, and cache hits in the usage reports and metrics.
"""

import uuid

import pytest

from accounts_client import Api, assert_invalid, check_key
from chatd_testing import get, poll


@pytest.fixture(scope="module")
def cached(module_servers, mock):
    """chatd with the response cache on (default TTL) in front of the module's mock."""
    return module_servers(OPENAI_API_KEY="sk-upstream-secret", OPENAI_BASE_URL=mock.base_url,
                          LLM_MODEL="mock-model", LLM_RETRIES="0", LLM_CIRCUIT_BREAKER_FAILURES="0",
                          GATEWAY_CACHE="on")


@pytest.fixture(scope="module")
def client(cached):
    """(api, user, key) on the caching server."""
    api = Api(cached.port)
    user = api.new_user()
    return api, user, user.new_key(name="cached")["key"]


def question(**extra) -> dict:
    """A deterministic request nobody asked before (so tests never share entries)."""
    body = {"model": "mock-model", "temperature": 0,
            "messages": [{"role": "user", "content": f"what is {uuid.uuid4()}?"}]}
    body.update(extra)
    return body


def chat(api, key, body):
    return api.call("POST", "/v1/chat/completions", body, token=key)


def cache_header(r) -> str | None:
    return r.headers.get("x-chatd-cache")


def upstream_calls(mock) -> int:
    return mock.stats()["requests"]


def test_a_repeated_request_is_answered_from_the_cache(client, upstream):
    api, _, key = client
    body = question(max_tokens=20)
    first = chat(api, key, body)
    assert first.status == 200, first
    assert cache_header(first) == "miss", first.headers
    second = chat(api, key, body)
    assert second.status == 200, second
    assert cache_header(second) == "hit", second.headers
    assert second.body == first.body  # the upstream's bytes, its answer id included
    assert second.headers.get("content-type", "").startswith("application/json")
    assert upstream_calls(upstream) == 1


def test_another_body_is_another_entry(client, upstream):
    api, _, key = client
    body = question()
    assert cache_header(chat(api, key, body)) == "miss"
    changed = dict(body, max_tokens=7)  # same question, one more field
    r = chat(api, key, changed)
    assert r.status == 200 and cache_header(r) == "miss", r
    assert cache_header(chat(api, key, changed)) == "hit"
    assert upstream_calls(upstream) == 2


@pytest.mark.parametrize("extra", [{"stream": True}, {"temperature": 0.5}, {"temperature": None}, {"n": 2}],
                         ids=["stream", "temperature 0.5", "no temperature", "n 2"])
def test_requests_that_may_answer_differently_bypass(client, upstream, extra):
    api, _, key = client
    body = {k: v for k, v in question(**extra).items() if v is not None}
    for _ in range(2):
        r = chat(api, key, body)
        assert r.status == 200, r
        assert cache_header(r) == "bypass", r.headers
    assert upstream_calls(upstream) == 2


def test_keys_never_see_each_others_answers(client, upstream):
    api, user, key = client
    body = question()
    assert cache_header(chat(api, key, body)) == "miss"
    other = user.new_key(name="same user, other key")["key"]
    r = chat(api, other, body)
    assert r.status == 200 and cache_header(r) == "miss", r
    stranger = api.new_user().new_key(name="stranger")["key"]
    assert cache_header(chat(api, stranger, body)) == "miss"
    # The user's session is a scope of its own too.
    assert cache_header(chat(api, user.access, body)) == "miss"
    assert cache_header(chat(api, user.access, body)) == "hit"
    assert upstream_calls(upstream) == 4


def test_a_key_can_opt_out(client, upstream):
    api, user, _ = client
    created = check_key(user.new_key(name="no cache", limits={"response_cache": False}), created=True)
    assert created["response_cache"] is False
    key = created["key"]
    body = question()
    for _ in range(2):
        r = chat(api, key, body)
        assert r.status == 200 and cache_header(r) == "bypass", r
    assert upstream_calls(upstream) == 2
    # Turned back on, it caches from then on (the change applies at once on this instance).
    r = api.patch_key(user.access, created["id"], {"response_cache": True})
    assert r.status == 200 and r.json()["response_cache"] is True, r
    assert cache_header(chat(api, key, body)) == "miss"
    assert cache_header(chat(api, key, body)) == "hit"
    assert upstream_calls(upstream) == 3
    # Keys cache by default, and the flag is a boolean, never null.
    assert check_key(user.new_key(name="default"), created=True)["response_cache"] is True
    assert_invalid(api.patch_key(user.access, created["id"], {"response_cache": None}), "response_cache")
    assert_invalid(api.patch_key(user.access, created["id"], {"response_cache": "no"}), "response_cache")


def test_hits_count_in_usage_and_metrics_without_tokens(client, upstream):
    api, _, _ = client
    user = api.new_user()  # a report of its own
    key = user.new_key(name="reported")["key"]
    body = question()
    assert cache_header(chat(api, key, body)) == "miss"
    for _ in range(2):
        assert cache_header(chat(api, key, body)) == "hit"

    def recorded():
        r = api.usage(user.access, group_by="key")
        assert r.status == 200, r
        report = r.json()
        return report if report["totals"]["requests"] == 3 else None

    report = poll(recorded, timeout=10, what="three usage events")
    totals = report["totals"]
    assert totals["cache_hits"] == 2 and totals["errors"] == 0, totals
    [group] = report["data"]
    assert group["name"] == "reported" and group["cache_hits"] == 2 and group["requests"] == 3, group
    # The hits cost nothing: all the tokens are the one upstream call's.
    by_model = api.usage(user.access, group_by="model").json()["data"]
    assert [g["cache_hits"] for g in by_model] == [2], by_model
    assert totals["total_tokens"] > 0

    text = get(api.port, "/metrics").body.decode()
    for name in ("gateway_cache_hits_total", "gateway_cache_misses_total", "gateway_cache_evictions_total"):
        assert f"# TYPE {name} counter" in text, name
    assert "# TYPE gateway_cache_bytes gauge" in text
    hits = next(line for line in text.splitlines() if line.startswith("gateway_cache_hits_total "))
    assert float(hits.split()[1]) >= 2, hits
    size = next(line for line in text.splitlines() if line.startswith("gateway_cache_bytes "))
    assert float(size.split()[1]) > 0, size


def test_entries_expire_after_the_ttl(module_servers, mock, upstream):
    srv = module_servers(OPENAI_API_KEY="sk-upstream-secret", OPENAI_BASE_URL=mock.base_url,
                         LLM_MODEL="mock-model", LLM_RETRIES="0", GATEWAY_CACHE="true", GATEWAY_CACHE_TTL="1s")
    api = Api(srv.port)
    key = api.new_user().new_key(name="short-lived")["key"]
    body = question()
    assert cache_header(chat(api, key, body)) == "miss"
    assert cache_header(chat(api, key, body)) == "hit"
    # Asked until the entry has expired: the first miss after the hits is the upstream again.
    poll(lambda: cache_header(chat(api, key, body)) == "miss", timeout=10, interval=0.2, what="expiry")
    assert upstream_calls(upstream) == 2
    assert cache_header(chat(api, key, body)) == "hit"  # and the new answer is kept


def test_the_cache_is_off_by_default(gw, upstream):
    api = Api(gw.port)
    key = api.new_user().new_key(name="uncached")["key"]
    body = question()
    for _ in range(2):
        r = chat(api, key, body)
        assert r.status == 200 and cache_header(r) == "bypass", r
    assert upstream_calls(upstream) == 2
