"""Key limits and usage on the gateway's /v1 requests, end to end with the demo model:
allowed models (403), RPM and TPM (429 with Retry-After), budgets (429, also after a
restart), and the usage every request records — read back from GET /usage and
GET /admin/usage, and stored on graceful shutdown.
"""

import pytest

from accounts_client import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from chatd_testing import assert_error_json, poll

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def gw(module_servers):
    return module_servers(ADMIN_EMAIL=ADMIN_EMAIL, ADMIN_PASSWORD=ADMIN_PASSWORD, DEMO_TOKEN_INTERVAL="0ms",
                          USAGE_FLUSH_INTERVAL="50ms")


def chat(api, key, model="demo", **fields):
    body = {"model": model, "messages": HELLO, "max_tokens": 4, **fields}
    return api.call("POST", "/v1/chat/completions", body, token=key)


def key_with(api, user, **limits):
    r = api.create_key(user.access, limits=limits)
    assert r.status == 201, r
    return r.json()


def own_usage(api, user, key_id, **params):
    r = api.usage(user.access, group_by="key", **params)
    assert r.status == 200, r
    rows = [row for row in r.json()["data"] if row["api_key_id"] == key_id]
    return rows[0] if rows else None


def test_models_outside_the_list_are_forbidden(gw):
    api = Api(gw.port)
    u = api.new_user()
    key = key_with(api, u, allowed_models=["demo"])
    assert chat(api, key["key"]).status == 200
    err = assert_error_json(chat(api, key["key"], model="demo-slow"), 403, "permission_denied")
    assert "demo-slow" in err["message"] and err["param"] == "model", err


def test_requests_per_minute(gw):
    api = Api(gw.port)
    u = api.new_user()
    key = key_with(api, u, rpm_limit=2)
    assert chat(api, key["key"]).status == 200
    assert chat(api, key["key"]).status == 200
    r = chat(api, key["key"])
    err = assert_error_json(r, 429, "rate_limit_exceeded")
    assert "requests per minute" in err["message"], err
    assert 1 <= int(r.headers.get("retry-after")) <= 30, r
    # Another key of the same user has its own limit.
    assert chat(api, u.new_key()["key"]).status == 200


def test_tokens_per_minute(gw):
    api = Api(gw.port)
    u = api.new_user()
    key = key_with(api, u, tpm_limit=100)
    err = assert_error_json(chat(api, key["key"], max_tokens=200), 429, "rate_limit_exceeded")
    assert "lower max_tokens" in err["message"], err
    assert chat(api, key["key"], max_tokens=4).status == 200


def test_a_budget_refuses_what_it_cannot_pay_for(gw):
    api = Api(gw.port)
    u = api.new_user()
    key = key_with(api, u, budget={"amount": 60, "unit": "tokens", "period": "day"})
    served = 0
    for _ in range(30):
        r = chat(api, key["key"])
        if r.status == 429:
            break
        assert r.status == 200, r
        served += 1
    err = assert_error_json(r, 429, "rate_limit_exceeded")
    assert "budget" in err["message"], err
    assert int(r.headers.get("retry-after")) >= 1
    assert served >= 2, served
    row = poll(lambda: (lambda row: row if row and row["requests"] == served else None)(
        own_usage(api, u, key["id"])), timeout=10, what="usage recorded")
    assert row["total_tokens"] <= 60, row
    # Raising the budget lets the key go on at once.
    r = api.patch_key(u.access, key["id"], {"budget": {"amount": 1000, "unit": "tokens", "period": "day"}})
    assert r.status == 200, r
    assert chat(api, key["key"]).status == 200


def test_usage_is_recorded_and_reported(gw):
    api = Api(gw.port)
    u = api.new_user()
    key = u.new_key(name="reported")
    usage = []
    for fields in ({}, {"max_tokens": 6}, {"stream": True, "stream_options": {"include_usage": True}}):
        r = chat(api, key["key"], **fields)
        assert r.status == 200, r
        if not fields.get("stream"):
            usage.append(r.json()["usage"])
    row = poll(lambda: (lambda row: row if row and row["requests"] == 3 else None)(
        own_usage(api, u, key["id"])), timeout=10, what="usage recorded")
    assert row["name"] == "reported" and row["errors"] == 0, row
    assert row["completion_tokens"] >= sum(x["completion_tokens"] for x in usage), row
    r = api.usage(u.access, group_by="model")
    assert [g["model"] for g in r.json()["data"]] == ["demo"], r
    admin = api.admin()
    r = api.usage(admin.access, admin=True, user_id=u.id, group_by="user")
    assert r.json()["data"][0]["email"] == u.email and r.json()["data"][0]["requests"] == 3, r


def anthropic(api, key, model="demo", **fields):
    body = {"model": model, "messages": HELLO, "max_tokens": 4, **fields}
    return api.call("POST", "/v1/messages", body, api_key=key, headers={"anthropic-version": "2023-06-01"})


def anthropic_error_type(resp, status: int) -> str:
    assert resp.status == status, resp
    assert resp.json()["type"] == "error", resp
    return resp.json()["error"]["type"]


def test_anthropic_messages_answer_to_the_same_limits_and_usage(gw):
    api = Api(gw.port)
    u = api.new_user()
    key = key_with(api, u, allowed_models=["demo"], tpm_limit=100)
    r = anthropic(api, key["key"])
    assert r.status == 200, r
    output_tokens = r.json()["usage"]["output_tokens"]
    assert anthropic(api, key["key"], stream=True).status == 200
    assert anthropic_error_type(anthropic(api, key["key"], model="demo-slow"), 403) == "permission_error"
    # More than the key's tokens per minute could ever hold: refused whatever the clock says.
    r = anthropic(api, key["key"], max_tokens=200)
    assert anthropic_error_type(r, 429) == "rate_limit_error"
    assert "lower max_tokens" in r.json()["error"]["message"], r
    row = poll(lambda: (lambda row: row if row and row["requests"] == 2 else None)(
        own_usage(api, u, key["id"])), timeout=10, what="usage recorded")
    assert row["errors"] == 0 and row["completion_tokens"] >= output_tokens, row


def test_usage_is_stored_on_shutdown_and_budgets_survive_a_restart(module_servers):
    srv = module_servers(DEMO_TOKEN_INTERVAL="0ms", USAGE_FLUSH_INTERVAL="1h", USAGE_BATCH_SIZE="1000")
    api = Api(srv.port)
    u = api.new_user()
    key = key_with(api, u, budget={"amount": 40, "unit": "tokens", "period": "month"})
    served = 0
    while chat(api, key["key"]).status == 200:
        served += 1
        assert served < 30
    srv = module_servers.restart(srv)  # SIGTERM: buffered usage is stored before the exit
    api = Api(srv.port)
    u.api = api
    u.relogin()
    row = own_usage(api, u, key["id"])
    assert row and row["requests"] == served, row
    # The new process starts the budget from what was stored: still used up.
    err = assert_error_json(chat(api, key["key"]), 429, "rate_limit_exceeded")
    assert "budget" in err["message"], err
