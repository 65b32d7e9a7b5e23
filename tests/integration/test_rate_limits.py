"""Rate limits and login lockout (docs/api.md "Rate limits").

Each test starts its own server(s) with the limits it tests (the shared fixtures run
with limits high enough to be out of the way). Login tests avoid registering through
HTTP where a bucket's count matters: the account comes from ADMIN_EMAIL/ADMIN_PASSWORD,
and per-IP tests fail logins on distinct unknown emails so no account bucket fills up.
"""

import time

import pytest

from accounts_client import (
    ADMIN_EMAIL, ADMIN_PASSWORD, Api, assert_rate_headers, assert_rate_limited,
    assert_unauthenticated, check_tokens, new_email, new_password,
)

# chatd's own defaults for the login limits (5/m, burst 5): unset the test overrides.
DEFAULT_LOGIN = {"RATE_LIMIT_LOGIN": None, "RATE_LIMIT_LOGIN_BURST": None}
ADMIN = {"ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD}


def _xff(i: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"203.0.113.{i}", "X-Real-IP": f"203.0.113.{i}"}


def _check_login_refusal(r) -> None:
    retry = assert_rate_limited(r)  # one token of a 5/min bucket: 12 s
    assert retry <= 13, f"Retry-After {retry} for a 5/min bucket"
    remaining, reset = assert_rate_headers(r, 5)
    assert remaining == 0, r
    assert 45 <= reset <= 61, f"X-RateLimit-Reset {reset}: an empty 5/min bucket fills in 60 s"


def test_login_limit_per_ip_with_defaults(make_server):
    api = Api(make_server(**DEFAULT_LOGIN, **ADMIN).port)
    for i in range(5):
        r = api.login(new_email("nobody"), "Wrong-Password-1")
        assert_unauthenticated(r)
        assert_rate_headers(r, 5)  # (which bucket's Remaining it shows is the server's call)
    # the 6th attempt within the minute is refused, even with the right password
    _check_login_refusal(api.login(ADMIN_EMAIL, ADMIN_PASSWORD))
    # registration counts as the same route class and is refused as well
    assert_rate_limited(api.register(new_email(), new_password()))


def test_forwarded_headers_from_untrusted_peer_are_ignored(make_server):
    api = Api(make_server(**DEFAULT_LOGIN, **ADMIN).port)  # no TRUSTED_PROXIES
    for i in range(5):
        assert_unauthenticated(api.login(new_email("nobody"), "Wrong-Password-1",
                                         headers=_xff(i + 1)))
    _check_login_refusal(api.login(ADMIN_EMAIL, ADMIN_PASSWORD, headers=_xff(99)))


def test_login_limit_per_account_behind_trusted_proxy(make_server):
    api = Api(make_server(**DEFAULT_LOGIN, **ADMIN, TRUSTED_PROXIES="127.0.0.1/32").port)
    # a second account, registered from its own address
    other_email, other_pw = new_email(), new_password()
    assert api.register(other_email, other_pw, headers=_xff(200)).status == 201
    for i in range(5):
        r = api.login(ADMIN_EMAIL, ADMIN_PASSWORD, headers=_xff(i + 1))
        check_tokens(r)
        assert_rate_headers(r, 5)
    # a new address for every attempt, yet the account's bucket is empty
    _check_login_refusal(api.login(ADMIN_EMAIL, ADMIN_PASSWORD, headers=_xff(6)))
    # another account from another address is not affected
    check_tokens(api.login(other_email, other_pw, headers=_xff(7)))


def test_login_limit_per_ip_behind_trusted_proxy(make_server):
    api = Api(make_server(**DEFAULT_LOGIN, TRUSTED_PROXIES="127.0.0.1/32").port)
    users = [(new_email(), new_password()) for _ in range(6)]
    for n, (email, pw) in enumerate(users):  # each from its own address
        assert api.register(email, pw, headers=_xff(100 + n)).status == 201
    client = {"X-Forwarded-For": "198.51.100.7"}
    for email, pw in users[:5]:
        check_tokens(api.login(email, pw, headers=client))
    _check_login_refusal(api.login(*users[5], headers=client))
    # the proxy's own address (127.0.0.1) and other clients are separate buckets
    check_tokens(api.login(*users[5], headers={"X-Forwarded-For": "198.51.100.8"}))


def test_spoofed_forwarded_for_entries_do_not_dodge_the_limit(make_server):
    """Behind one trusted proxy, X-Forwarded-For is "<whatever the client sent>, <client
    address the proxy saw>": only the entry the trusted proxy appended can be believed
    (the rightmost one not in TRUSTED_PROXIES), so rotating the left part changes nothing."""
    api = Api(make_server(**DEFAULT_LOGIN, **ADMIN, TRUSTED_PROXIES="127.0.0.1/32").port)
    for i in range(5):
        spoof = {"X-Forwarded-For": f"192.0.2.{i + 1}, 198.51.100.9"}
        assert_unauthenticated(api.login(new_email("nobody"), "Wrong-Password-1",
                                         headers=spoof))
    _check_login_refusal(api.login(ADMIN_EMAIL, ADMIN_PASSWORD,
                                   headers={"X-Forwarded-For": "192.0.2.77, 198.51.100.9"}))


def test_rate_limit_disabled(make_server):
    api = Api(make_server(**DEFAULT_LOGIN, **ADMIN, RATE_LIMIT_ENABLED="false").port)
    for _ in range(7):
        check_tokens(api.login(ADMIN_EMAIL, ADMIN_PASSWORD))


def test_api_limit_per_user(make_server):
    api = Api(make_server(RATE_LIMIT_API="1/s", RATE_LIMIT_API_BURST="3").port)
    u, other = api.new_user(), api.new_user()
    responses = [api.me(u.access) for _ in range(4)]
    for r in responses[:3]:
        assert r.status == 200, r
    remaining = [assert_rate_headers(r, 3)[0] for r in responses[:3]]
    assert remaining[0] <= 2 and remaining == sorted(remaining, reverse=True), remaining
    refused = responses[3]
    retry = assert_rate_limited(refused)
    assert retry <= 2, refused
    remaining, reset = assert_rate_headers(refused, 3)
    assert remaining == 0 and 1 <= reset <= 4, refused
    # per user: someone else is not affected
    assert api.me(other.access).status == 200
    # a token is back after a second
    deadline = time.monotonic() + 5
    while (r := api.me(u.access)).status != 200:
        assert_rate_limited(r)
        assert time.monotonic() < deadline, "the API bucket did not refill within 5 s"
        time.sleep(0.2)


def test_api_keys_are_not_throttled_by_the_users_session_bucket(make_server):
    """The app-API bucket is per user for sessions; an API key has only the limits set on
    the key (none unless set), so an integration and its owner don't throttle each other."""
    api = Api(make_server(RATE_LIMIT_API="1/s", RATE_LIMIT_API_BURST="2").port)
    u = api.new_user()
    key = u.new_key()["key"]
    statuses = [api.me(u.access).status for _ in range(3)]  # creating the key took a token too
    assert statuses[-1] == 429, statuses
    statuses = [api.me(key).status for _ in range(10)]
    assert statuses == [200] * 10, statuses
    assert_rate_limited(api.me(u.access))


# ------------------------------------------------------------------------ lockout

LOCKOUT = {"LOGIN_LOCKOUT_THRESHOLD": "3"}


def _lock(api: Api, email: str) -> float:
    """Three failed logins; returns the monotonic time of the last one."""
    for _ in range(3):
        assert_unauthenticated(api.login(email, "Wrong-Password-1"))
    return time.monotonic()


def test_lockout_expires(make_server):
    api = Api(make_server(**LOCKOUT, LOGIN_LOCKOUT_DURATION="2s").port)
    u, bystander = api.new_user(), api.new_user()
    locked_at = _lock(api, u.email)
    r = api.login(u.email, u.password)
    retry = assert_rate_limited(r)
    assert retry <= 3, r
    check_tokens(api.login(bystander.email, bystander.password))
    # the lock holds no longer than its duration
    time.sleep(max(0.0, locked_at + 2.2 - time.monotonic()))
    deadline = time.monotonic() + 5
    while (r := api.login(u.email, u.password)).status != 200:
        assert_rate_limited(r)
        assert time.monotonic() < deadline, "still locked 7 s after a 2 s lockout"
        time.sleep(0.3)
    check_tokens(r)


@pytest.fixture(scope="module")
def long_lockout(module_servers):
    return Api(module_servers(**LOCKOUT, **ADMIN, LOGIN_LOCKOUT_DURATION="15m").port)


def test_lockout_is_429_with_right_password(long_lockout):
    api = long_lockout
    u = api.new_user()
    _lock(api, u.email)
    r = api.login(u.email, u.password)
    retry = assert_rate_limited(r)
    assert 60 <= retry <= 15 * 60, f"Retry-After {retry} for a 15 min lock"
    assert_rate_limited(api.login_form(u.email, u.password))
    assert_rate_limited(api.login(u.email, "Wrong-Password-1"))  # no oracle while locked
    # existing sessions keep working: the lock is about logging in
    assert api.me(u.access).status == 200


def test_lockout_needs_consecutive_failures(long_lockout):
    api = long_lockout
    u = api.new_user()
    for _ in range(2):
        assert_unauthenticated(api.login(u.email, "Wrong-Password-1"))
    check_tokens(api.login(u.email, u.password))  # resets the count
    for _ in range(2):
        assert_unauthenticated(api.login(u.email, "Wrong-Password-1"))
    check_tokens(api.login(u.email, u.password))


def test_lockout_cleared_by_admin_update(long_lockout):
    api = long_lockout
    admin = api.admin()
    u = api.new_user()
    _lock(api, u.email)
    assert_rate_limited(api.login(u.email, u.password))
    r = api.admin_patch(admin.access, u.id, {"is_active": True})
    assert r.status == 200, r
    check_tokens(api.login(u.email, u.password))


def test_lockout_cleared_by_password_change(long_lockout):
    api = long_lockout
    u = api.new_user()
    _lock(api, u.email)
    assert_rate_limited(api.login(u.email, u.password))
    new = new_password()
    r = api.change_password(u.access, u.password, new)
    assert r.status == 204, r
    check_tokens(api.login(u.email, new))
