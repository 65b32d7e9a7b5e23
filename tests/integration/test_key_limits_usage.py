"""API keys' limits and the usage reports over HTTP (docs/api.md "API keys" and "Usage"):
creating keys with allowed models, RPM/TPM limits and budgets, validation, PATCH by the
owner and by an admin, and GET /usage and GET /admin/usage (shapes, defaults, grouping,
validation, access). Enforcement on /v1 requests and usage recorded by them are covered
with the gateway's endpoints; the recorder and the budgets have unit tests.
"""

from datetime import datetime, timedelta, timezone

from accounts_client import (
    assert_forbidden, assert_invalid, assert_not_found, check_key, parse_time,
)
from chatd_testing import assert_error_json, request

LIMITS = {
    "allowed_models": ["demo", "demo-slow"],
    "rpm_limit": 60,
    "tpm_limit": 100000,
    "budget": {"amount": 12.5, "unit": "usd", "period": "month"},
}
NO_LIMITS = {"allowed_models": None, "rpm_limit": None, "tpm_limit": None, "budget": None}
TOTALS = {"requests", "errors", "cache_hits", "prompt_tokens", "completion_tokens", "cached_tokens",
          "total_tokens", "cost_usd"}


def limits_of(key: dict) -> dict:
    return {name: key[name] for name in NO_LIMITS}


# ------------------------------------------------------------------------ key fields


def test_keys_carry_limits(api):
    u = api.new_user()
    r = api.create_key(u.access, name="limited", limits=LIMITS)
    assert r.status == 201, r
    created = check_key(r.json(), created=True)
    assert limits_of(created) == LIMITS, created

    plain = check_key(u.new_key(name="plain"), created=True)
    assert limits_of(plain) == NO_LIMITS, plain

    listed = {k["id"]: check_key(k) for k in api.list_keys(u.access).json()["data"]}
    assert limits_of(listed[created["id"]]) == LIMITS
    assert limits_of(listed[plain["id"]]) == NO_LIMITS

    # Token budgets are whole numbers; repeated models are kept once.
    r = api.create_key(u.access, limits={
        "allowed_models": ["demo", "demo"],
        "budget": {"amount": 50000, "unit": "tokens", "period": "day"}})
    assert r.status == 201, r
    assert r.json()["allowed_models"] == ["demo"]
    assert r.json()["budget"] == {"amount": 50000, "unit": "tokens", "period": "day"}


def test_key_limits_are_validated(api):
    u = api.new_user()
    cases = [
        ({"allowed_models": []}, "allowed_models"),
        ({"allowed_models": "demo"}, "allowed_models"),
        ({"allowed_models": [1]}, "allowed_models"),
        ({"allowed_models": [""]}, "allowed_models"),
        ({"allowed_models": ["m" * 101]}, "allowed_models"),
        ({"allowed_models": [f"m{i}" for i in range(101)]}, "allowed_models"),
        ({"rpm_limit": 0}, "rpm_limit"),
        ({"rpm_limit": "10"}, "rpm_limit"),
        ({"rpm_limit": 1.5}, "rpm_limit"),
        ({"rpm_limit": 1000001}, "rpm_limit"),
        ({"tpm_limit": -1}, "tpm_limit"),
        ({"budget": 10}, "budget"),
        ({"budget": {"unit": "usd", "period": "day"}}, "budget.amount"),
        ({"budget": {"amount": "5", "unit": "usd", "period": "day"}}, "budget.amount"),
        ({"budget": {"amount": 0, "unit": "usd", "period": "day"}}, "budget.amount"),
        ({"budget": {"amount": 1.5, "unit": "tokens", "period": "day"}}, "budget.amount"),
        ({"budget": {"amount": 5, "period": "day"}}, "budget.unit"),
        ({"budget": {"amount": 5, "unit": "eur", "period": "day"}}, "budget.unit"),
        ({"budget": {"amount": 5, "unit": "usd", "period": "week"}}, "budget.period"),
    ]
    for limits, param in cases:
        assert_invalid(api.create_key(u.access, limits=limits), param)
    assert api.list_keys(u.access).json()["data"] == []


def test_owner_changes_limits(api):
    u = api.new_user()
    key = check_key(api.create_key(u.access, limits=LIMITS).json(), created=True)

    r = api.patch_key(u.access, key["id"], {"rpm_limit": 5, "allowed_models": None})
    assert r.status == 200, r
    changed = check_key(r.json())
    assert "key" not in changed
    assert changed["rpm_limit"] == 5
    assert changed["allowed_models"] is None  # null removes the limit
    assert changed["tpm_limit"] == LIMITS["tpm_limit"]  # absent: unchanged
    assert changed["budget"] == LIMITS["budget"]
    listed = [k for k in api.list_keys(u.access).json()["data"] if k["id"] == key["id"]]
    assert limits_of(listed[0]) == limits_of(changed)

    r = api.patch_key(u.access, key["id"], {"budget": None, "tpm_limit": None, "rpm_limit": None})
    assert r.status == 200, r
    assert limits_of(r.json()) == NO_LIMITS

    # A bad value changes nothing.
    assert_invalid(api.patch_key(u.access, key["id"], {"tpm_limit": 0}), "tpm_limit")
    assert_invalid(api.patch_key(u.access, key["id"],
                                 {"budget": {"amount": 1, "unit": "usd", "period": "year"}}),
                   "budget.period")
    assert limits_of(api.list_keys(u.access).json()["data"][0]) == NO_LIMITS

    # The key itself cannot raise its own limits.
    assert_forbidden(api.patch_key(key["key"], key["id"], {"rpm_limit": 1000}))


def test_limits_of_someone_elses_key_are_not_found(api):
    alice, bob = api.new_user(), api.new_user()
    key = alice.new_key()
    assert_not_found(api.patch_key(bob.access, key["id"], {"rpm_limit": 1}))
    assert_not_found(api.patch_key(bob.access, "not-a-uuid", {"rpm_limit": 1}))
    assert api.delete_key(alice.access, key["id"]).status == 204
    assert_not_found(api.patch_key(alice.access, key["id"], {"rpm_limit": 1}))


def test_admin_changes_anyones_limits(api):
    admin = api.admin()
    u = api.new_user()
    key = u.new_key()
    r = api.admin_patch_key(admin.access, key["id"], {"tpm_limit": 2000,
                                                       "budget": {"amount": 1000, "unit": "tokens",
                                                                  "period": "day"}})
    assert r.status == 200, r
    assert r.json()["tpm_limit"] == 2000
    assert r.json()["budget"] == {"amount": 1000, "unit": "tokens", "period": "day"}
    assert api.list_keys(u.access).json()["data"][0]["tpm_limit"] == 2000
    assert_forbidden(api.admin_patch_key(u.access, key["id"], {"tpm_limit": 1}))
    assert_not_found(api.admin_patch_key(admin.access, "0190f3d6-0000-7000-8000-000000000000",
                                         {"tpm_limit": 1}))
    assert_invalid(api.admin_patch_key(admin.access, key["id"], {"rpm_limit": -3}), "rpm_limit")


# ---------------------------------------------------------------------------- usage


def check_report(body: dict, group_by) -> dict:
    assert set(body) == {"object", "from", "to", "group_by", "totals", "data", "has_more"}, body
    assert body["object"] == "usage.report"
    assert body["group_by"] == group_by
    assert set(body["totals"]) == TOTALS, body
    assert isinstance(body["data"], list)
    assert isinstance(body["has_more"], bool)
    assert parse_time(body["from"]) < parse_time(body["to"])
    return body


def test_usage_of_a_new_user_is_empty(api):
    u = api.new_user()
    r = api.usage(u.access)
    assert r.status == 200, r
    body = check_report(r.json(), None)
    assert body["totals"] == {name: 0 for name in TOTALS}, body
    assert body["data"] == []
    # The default range is the last 30 days.
    span = parse_time(body["to"]) - parse_time(body["from"])
    assert span == timedelta(days=30), body
    assert abs(parse_time(body["to"]) - datetime.now(timezone.utc)) < timedelta(minutes=1)

    for group in ("key", "model", "day"):
        r = api.usage(u.access, group_by=group)
        assert r.status == 200, r
        check_report(r.json(), group)

    r = api.usage(u.access, **{"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00+00:00"})
    assert r.status == 200, r
    body = check_report(r.json(), None)
    assert body["from"] == "2026-01-01T00:00:00.000Z"
    assert body["to"] == "2026-02-01T00:00:00.000Z"


def test_usage_parameters_are_validated(api):
    u = api.new_user()
    assert_invalid(api.usage(u.access, group_by="user"), "group_by")  # admins only
    assert_invalid(api.usage(u.access, group_by="provider"), "group_by")
    assert_invalid(api.usage(u.access, **{"from": "last week"}), "from")
    assert_invalid(api.usage(u.access, to="2026-02-30T00:00:00Z"), "to")
    assert_invalid(api.usage(u.access, **{"from": "2026-02-01T00:00:00Z",
                                          "to": "2026-01-01T00:00:00Z"}), "from")
    for limit in ("0", "1001", "x"):
        assert_invalid(api.usage(u.access, group_by="model", limit=limit), "limit")


def test_usage_needs_the_chat_scope_and_admin_usage_an_admin(api):
    u = api.new_user()
    chat_key = u.new_key(scopes=["chat"])["key"]
    assert api.usage(chat_key).status == 200
    assert_forbidden(api.usage(u.new_key(scopes=["gateway"])["key"]))
    assert_forbidden(api.usage(u.access, admin=True))
    r = api.call("GET", "/usage")
    assert_error_json(r, 401, "unauthenticated")

    admin = api.admin()
    for group in ("key", "user", "model", "day", None):
        r = api.usage(admin.access, admin=True, group_by=group)
        assert r.status == 200, r
        check_report(r.json(), group)
    r = api.usage(admin.access, admin=True, user_id=u.id, group_by="user")
    assert r.status == 200, r
    assert r.json()["data"] == []  # no gateway requests yet
    assert_invalid(api.usage(admin.access, admin=True, group_by="provider"), "group_by")


def test_usage_metrics_are_exposed(accounts_server):
    r = request(accounts_server.port, "GET", "/metrics")
    assert r.status == 200, r
    text = r.body.decode()
    for name in ("usage_events_recorded_total", "usage_events_dropped_total",
                 "usage_events_queue_depth"):
        assert f"\n{name} " in text, name
    assert "# TYPE gateway_key_limit_refusals_total counter" in text
