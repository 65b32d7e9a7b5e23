"""Accounts over HTTP (docs/api.md): registration, login (JSON and OAuth2 form),
refresh-token rotation, /users/me, password change, account deletion, API keys,
admin user management and isolation between users.

Most tests share `accounts_server` (an admin bootstrapped from ADMIN_EMAIL) and create
their own users with unique emails.
"""

import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from accounts_client import (
    ADMIN_EMAIL, Api, assert_forbidden, assert_invalid, assert_not_found,
    assert_unauthenticated, check_key, check_tokens, check_user, future, jwt_parts, list_all,
    new_email, new_password, parse_time, rfc3339, unique,
)
from chatd_testing import assert_error_json, poll

# ------------------------------------------------------------------- registration


def test_register_returns_user(api):
    email = new_email()
    r = api.register(email, new_password(), "Ada Lovelace")
    assert r.status == 201, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    u = check_user(r.json(), email)
    assert u["name"] == "Ada Lovelace"
    assert u["role"] == "user" and u["is_active"] is True, u
    assert u["last_login_at"] is None, u
    body = r.body.decode().lower()
    assert "password" not in body and "hash" not in body, r


def test_register_ids_are_uuidv7_and_unique(api):
    ids = {api.register(new_email(), new_password()).json()["id"] for _ in range(2)}
    assert len(ids) == 2
    for i in ids:
        assert i[14] == "7", f"not a UUIDv7: {i}"


def test_register_normalises_email(api):
    local = unique("Mixed.Case")
    r = api.register(f"  {local}@Example.COM \t", new_password())
    assert r.status == 201, r
    assert r.json()["email"] == f"{local.lower()}@example.com", r


def test_register_duplicate_email_is_409(api):
    email, pw = new_email(), new_password()
    assert api.register(email, pw).status == 201
    assert_error_json(api.register(email, new_password()), 409, "conflict")
    # the same address in another case is the same account
    assert_error_json(api.register(email.upper(), new_password()), 409, "conflict")


@pytest.mark.parametrize("email", [
    "no-at-sign.example.com", "two@@example.com", "a@b@example.com", "user@nodot",
    "user@", "@example.com", "", "   ",
    "x" * 250 + "@example.com",  # 262 characters > 254
])
def test_register_malformed_email_is_400(api, email):
    assert_invalid(api.register(email, new_password()), "email")


def test_register_malformed_email_stores_nothing(api):
    local, pw = unique("fixme"), new_password()
    fixed = f"{local}@example.com"
    assert_invalid(api.register(f"{local}@@example.com", pw), "email")
    assert_invalid(api.register(f"{local}@example", pw), "email")
    # nothing was stored under a repaired address: no login, and the address is free
    assert_unauthenticated(api.login(fixed, pw))
    r = api.register(fixed, pw)
    assert r.status == 201, r
    assert api.login(fixed, pw).status == 200


@pytest.mark.parametrize("password", ["Zq8#mK2", "Zq8#mK2p" * 16 + "x"],
                         ids=["7-chars", "129-chars"])
def test_register_password_length_is_400(api, password):
    assert_invalid(api.register(new_email(), password), "password")


@pytest.mark.parametrize("password", ["Zq8#mK2p", "Zq8#mK2p" * 16], ids=["8-chars", "128-chars"])
def test_register_password_length_bounds_accepted(api, password):
    email = new_email()
    assert api.register(email, password).status == 201
    assert api.login(email, password).status == 200


@pytest.mark.parametrize("password", ["password123", "12345678", "qwertyuiop"])
def test_register_common_password_is_400(api, password):
    assert_invalid(api.register(new_email(), password), "password")


def test_register_name_too_long_is_400(api):
    assert_invalid(api.register(new_email(), new_password(), "n" * 101), "name")
    r = api.register(new_email(), new_password(), "n" * 100)
    assert r.status == 201 and r.json()["name"] == "n" * 100, r


def test_register_ignores_role_and_status(api):
    r = api.call("POST", "/auth/register", {"email": new_email(), "password": new_password(),
                                            "role": "admin", "is_active": False})
    if r.status == 201:
        assert r.json()["role"] == "user" and r.json()["is_active"] is True, r
    else:
        assert_error_json(r, 400, "invalid_request")


def test_register_missing_fields_is_400(api):
    assert_invalid(api.call("POST", "/auth/register", {"password": new_password()}), "email")
    assert_invalid(api.call("POST", "/auth/register", {"email": new_email()}), "password")


def test_register_needs_json(api):
    r = api.call("POST", "/auth/register", raw=b"email=a@example.com&password=x",
                 headers={"Content-Type": "text/plain"})
    assert_error_json(r, 415, "unsupported_media_type")


def test_registration_closed_is_403(make_server):
    srv = make_server(ALLOW_REGISTRATION="false")
    assert_forbidden(Api(srv.port).register(new_email(), new_password()))


# -------------------------------------------------------------------------- login


def test_login_json(api):
    email, pw = new_email(), new_password()
    uid = api.register(email, pw).json()["id"]
    t = check_tokens(api.login(email, pw))
    _, claims, _ = jwt_parts(t["access_token"])
    assert claims["sub"] == uid
    me = api.me(t["access_token"])
    assert me.status == 200, me
    u = check_user(me.json(), email)
    assert u["id"] == uid
    assert u["last_login_at"] is not None, u


def test_login_email_is_normalised(api):
    email, pw = new_email(), new_password()
    api.register(email, pw)
    check_tokens(api.login(f"  {email.upper()} ", pw))


def test_login_form_oauth2_password_flow(api):
    email, pw = new_email(), new_password()
    api.register(email, pw)
    t = check_tokens(api.login_form(email, pw))
    assert api.me(t["access_token"]).status == 200
    assert_unauthenticated(api.login_form(email, pw + "x"))


def test_login_wrong_password_and_unknown_email_look_the_same(api):
    email, pw = new_email(), new_password()
    api.register(email, pw)
    wrong = assert_unauthenticated(api.login(email, "Wrong-" + pw))
    unknown = assert_unauthenticated(api.login(new_email("nobody"), pw))
    assert wrong == unknown, (wrong, unknown)


def test_login_unknown_email_costs_like_a_wrong_password(api):
    """No user enumeration by timing: an unknown email still pays for a hash."""
    u = api.new_user()
    wrong, unknown = [], []
    for i in range(5):
        t = time.monotonic()
        assert api.login(u.email, f"Wrong-Password-{i}").status == 401
        wrong.append(time.monotonic() - t)
        t = time.monotonic()
        assert api.login(new_email("nobody"), f"Wrong-Password-{i}").status == 401
        unknown.append(time.monotonic() - t)
        if i % 2:
            assert api.login(u.email, u.password).status == 200  # stay clear of the lockout
    wrong.sort()
    unknown.sort()
    assert unknown[2] >= 0.4 * wrong[2], f"medians: unknown {unknown[2]:.4f}s, wrong {wrong[2]:.4f}s"


def test_login_missing_password_is_400(api):
    assert_invalid(api.call("POST", "/auth/login", {"email": new_email()}), "password")


# ------------------------------------------------------------------------ refresh


def test_refresh_rotates_and_reuse_revokes_family(api):
    u = api.new_user()
    first = u.refresh
    t2 = check_tokens(api.refresh(first))
    assert t2["refresh_token"] != first and t2["access_token"] != u.access
    assert api.me(t2["access_token"]).status == 200
    t3 = check_tokens(api.refresh(t2["refresh_token"]))
    # presenting a spent token again: 401, and the newest token of the family dies too
    assert_unauthenticated(api.refresh(first))
    assert_unauthenticated(api.refresh(t3["refresh_token"]))
    assert_unauthenticated(api.refresh(t2["refresh_token"]))


def test_refresh_reuse_spares_other_sessions(api):
    u = api.new_user()
    other = api.tokens(u.email, u.password)  # a second login: another family
    t2 = check_tokens(api.refresh(u.refresh))
    assert_unauthenticated(api.refresh(u.refresh))
    assert_unauthenticated(api.refresh(t2["refresh_token"]))
    check_tokens(api.refresh(other["refresh_token"]))


def _concurrently(n: int, fn) -> list:
    barrier = threading.Barrier(n)
    out: list = [None] * n

    def run(i):
        barrier.wait(5)
        out[i] = fn()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_refresh_concurrent_reuse_has_one_winner(api):
    u = api.new_user()
    results = _concurrently(6, lambda: api.refresh(u.refresh))
    statuses = sorted(r.status for r in results)
    assert statuses == [200] + [401] * 5, statuses
    for r in results:
        if r.status == 401:
            assert_unauthenticated(r)
    # the losers presented a spent token: the winner's new token is revoked too
    [won] = [r.json() for r in results if r.status == 200]
    assert_unauthenticated(api.refresh(won["refresh_token"]))


def test_register_concurrent_same_email_has_one_winner(api):
    email = new_email()
    results = _concurrently(6, lambda: api.register(email, new_password()))
    statuses = sorted(r.status for r in results)
    assert statuses == [201] + [409] * 5, [(r.status, r.body[:200]) for r in results]


def test_refresh_rejects_garbage(api):
    assert_unauthenticated(api.refresh("not-a-refresh-token"))
    u = api.new_user()
    assert_unauthenticated(api.refresh(u.access))  # an access token is not a refresh token


def test_logout_then_refresh_is_401(api):
    u = api.new_user()
    r = api.logout(u.refresh)
    assert r.status == 204 and r.body == b"", r
    assert_unauthenticated(api.refresh(u.refresh))


# ---------------------------------------------------------------------- /users/me


def test_me_requires_auth(api):
    assert_unauthenticated(api.me())


def test_patch_me_name_and_email(api):
    u = api.new_user(name="Old Name")
    r = api.patch_me(u.access, {"name": "New Name"})
    assert r.status == 200, r
    body = check_user(r.json(), u.email)
    assert body["name"] == "New Name" and body["id"] == u.id
    assert parse_time(body["updated_at"]) >= parse_time(body["created_at"])
    assert api.me(u.access).json()["name"] == "New Name"

    local = unique("Renamed")
    r = api.patch_me(u.access, {"email": f" {local}@Example.org "})
    assert r.status == 200, r
    new = f"{local.lower()}@example.org"
    assert r.json()["email"] == new and r.json()["name"] == "New Name", r
    assert api.login(new, u.password).status == 200
    assert_unauthenticated(api.login(u.email, u.password))


def test_patch_me_cannot_change_role_or_status(api):
    u = api.new_user()
    r = api.patch_me(u.access, {"role": "admin", "is_active": False, "name": "Mallory"})
    assert r.status in (200, 400), r
    me = api.me(u.access)
    assert me.status == 200, me
    assert me.json()["role"] == "user" and me.json()["is_active"] is True, me


def test_patch_me_email_taken_is_409(api):
    a, b = api.new_user(), api.new_user()
    assert_error_json(api.patch_me(a.access, {"email": b.email}), 409, "conflict")
    assert api.me(a.access).json()["email"] == a.email


def test_patch_me_validates(api):
    u = api.new_user()
    assert_invalid(api.patch_me(u.access, {"email": "not-an-email"}), "email")
    assert_invalid(api.patch_me(u.access, {"name": "n" * 101}), "name")
    assert api.me(u.access).json()["email"] == u.email


# ---------------------------------------------------------------- password change


def test_change_password(api):
    u = api.new_user()
    other_session = api.tokens(u.email, u.password)
    key = u.new_key()["key"]
    assert api.me(key).status == 200
    new = new_password()
    assert_invalid(api.change_password(u.access, "Wrong-" + u.password, new), "current_password")
    assert_invalid(api.change_password(u.access, u.password, "short"), "new_password")
    assert_invalid(api.change_password(u.access, u.password, "password123"), "new_password")
    # nothing changed so far
    assert api.me(u.access).status == 200

    r = api.change_password(u.access, u.password, new)
    assert r.status == 204 and r.body == b"", r
    assert_unauthenticated(api.me(u.access))
    assert_unauthenticated(api.me(other_session["access_token"]))
    assert_unauthenticated(api.refresh(u.refresh))
    assert_unauthenticated(api.refresh(other_session["refresh_token"]))
    # A password change ends sessions, not API keys (docs/api.md): integrations keep working.
    assert api.me(key).status == 200
    assert_unauthenticated(api.login(u.email, u.password))
    t = check_tokens(api.login(u.email, new))
    assert api.me(t["access_token"]).status == 200
    _, old_claims, _ = jwt_parts(u.access)
    _, new_claims, _ = jwt_parts(t["access_token"])
    assert new_claims["ver"] > old_claims["ver"], (old_claims, new_claims)


# ----------------------------------------------------------------- account delete


def test_delete_me(api):
    u = api.new_user()
    key = u.new_key()["key"]
    r = api.delete_me(u.access)
    assert r.status == 204 and r.body == b"", r
    assert_unauthenticated(api.login(u.email, u.password))
    assert_unauthenticated(api.me(u.access))
    assert_unauthenticated(api.me(key))
    assert_unauthenticated(api.refresh(u.refresh))


# ----------------------------------------------------------------------- API keys


def test_api_key_create_shown_once_and_usable(api):
    u = api.new_user()
    r = api.create_key(u.access, name="laptop")
    assert r.status == 201, r
    k = check_key(r.json(), created=True)
    assert k["name"] == "laptop" and k["expires_at"] is None and k["last_used_at"] is None, k
    assert {"chat", "gateway"} <= set(k["scopes"]) and "admin" not in k["scopes"], k

    lst = api.list_keys(u.access)
    assert lst.status == 200, lst
    assert k["key"] not in lst.body.decode(), "the list shows the secret key"
    page = lst.json()
    assert page["next_cursor"] is None
    [listed] = [x for x in page["data"] if x["id"] == k["id"]]
    check_key(listed)
    assert listed["prefix"] == k["prefix"] and listed["name"] == "laptop"

    for hdrs in ({"token": k["key"]}, {"api_key": k["key"]}):
        me = api.call("GET", "/users/me", **hdrs)
        assert me.status == 200, (hdrs, me)
        assert me.json()["id"] == u.id


def test_api_key_last_used_at(api):
    u = api.new_user()
    k = u.new_key()
    assert api.me(k["key"]).status == 200

    def used():
        [x] = [x for x in api.list_keys(u.access).json()["data"] if x["id"] == k["id"]]
        return x["last_used_at"]

    parse_time(poll(used, 5, 0.2, "last_used_at set after a use"))


def test_api_keys_paginate(api):
    u = api.new_user()
    ids = {u.new_key(name=f"k{i}")["id"] for i in range(3)}
    keys = list_all(lambda c: api.call(
        "GET", "/api-keys?limit=2" + (f"&cursor={urllib.parse.quote(c)}" if c else ""),
        token=u.access), 2)
    assert [k["id"] for k in keys if k["id"] in ids] and {k["id"] for k in keys} == ids, keys
    assert len(keys) == 3


def test_api_key_revoke_is_immediate(api):
    u = api.new_user()
    k = u.new_key()
    assert api.me(k["key"]).status == 200
    r = api.delete_key(u.access, k["id"])
    assert r.status == 204, r
    assert_unauthenticated(api.me(k["key"]))
    assert_unauthenticated(api.call("GET", "/users/me", api_key=k["key"]))
    assert all(x["id"] != k["id"] for x in api.list_keys(u.access).json()["data"])
    assert_not_found(api.delete_key(u.access, k["id"]))


def test_api_key_expires(api):
    u = api.new_user()
    created = time.monotonic()
    k = u.new_key(expires_at=future(2))
    exp = parse_time(k["expires_at"])
    assert timedelta(seconds=1) < exp - datetime.now(timezone.utc) < timedelta(seconds=4), k
    if time.monotonic() - created < 1.0:
        assert api.me(k["key"]).status == 200
    deadline = time.monotonic() + 10
    while True:
        r = api.me(k["key"])
        if r.status == 401:
            break
        assert r.status == 200, r
        assert time.monotonic() < deadline, "an expired API key still works after 10 s"
        time.sleep(0.2)
    assert_unauthenticated(r)
    assert datetime.now(timezone.utc) >= exp - timedelta(seconds=1), "key rejected too early"


def test_api_key_scopes(api):
    u = api.new_user()
    gw = u.new_key(scopes=["gateway"])
    assert gw["scopes"] == ["gateway"], gw
    assert_forbidden(api.me(gw["key"]))
    chat = u.new_key(scopes=["chat"])
    assert api.me(chat["key"]).status == 200


def test_api_key_cannot_do_session_things(api):
    u = api.new_user()
    k = u.new_key()["key"]
    assert_forbidden(api.create_key(k))
    assert_forbidden(api.change_password(k, u.password, new_password()))
    assert_forbidden(api.delete_me(k))
    assert api.me(u.access).status == 200
    assert api.login(u.email, u.password).status == 200


def test_api_key_validation(api):
    u = api.new_user()
    assert_forbidden(api.create_key(u.access, scopes=["chat", "admin"]))
    assert_invalid(api.create_key(u.access, scopes=["root"]), "scopes")
    assert_invalid(api.create_key(u.access, scopes=["chat", "everything"]), "scopes")
    past = rfc3339(datetime.now(timezone.utc) - timedelta(hours=1))
    assert_invalid(api.create_key(u.access, expires_at=past), "expires_at")
    assert_invalid(api.create_key(u.access, expires_at="tomorrow"), "expires_at")
    assert_invalid(api.create_key(u.access, name=""), "name")
    assert_invalid(api.create_key(u.access, name="k" * 101), "name")
    assert api.list_keys(u.access).json()["data"] == []


def test_api_key_isolation(api):
    a, b = api.new_user(), api.new_user()
    kb = b.new_key()
    missing = assert_not_found(api.delete_key(a.access, str(uuid.uuid4())))
    theirs = assert_not_found(api.delete_key(a.access, kb["id"]))
    assert missing["message"] == theirs["message"], (missing, theirs)
    assert all(x["id"] != kb["id"] for x in api.list_keys(a.access).json()["data"])
    me = api.me(kb["key"])
    assert me.status == 200 and me.json()["id"] == b.id, me


# -------------------------------------------------------------------------- admin


def test_admin_bootstrap(api):
    admin = api.admin()
    me = check_user(api.me(admin.access).json(), ADMIN_EMAIL)
    assert me["role"] == "admin" and me["is_active"] is True, me
    _, claims, _ = jwt_parts(admin.access)
    assert claims["role"] == "admin", claims


def test_admin_users_forbidden_for_users(api):
    u = api.new_user()
    assert_forbidden(api.admin_users(u.access))
    assert_forbidden(api.admin_patch(u.access, u.id, {"role": "admin"}))
    assert api.me(u.access).json()["role"] == "user"


def test_admin_users_list_search_and_paginate(api):
    admin = api.admin()
    tag = unique("srch")
    ids = {api.register(f"{tag}-{i}@example.com", new_password(), f"Person {i}").json()["id"]
           for i in range(3)}
    assert len(ids) == 3
    found = list_all(lambda c: api.admin_users(admin.access, q=tag, limit=2, cursor=c), 2)
    assert [check_user(x) for x in found]
    assert {x["id"] for x in found} == ids and len(found) == 3, found
    assert all(tag in x["email"] for x in found)
    first = api.admin_users(admin.access, q=tag, limit=2).json()
    assert len(first["data"]) == 2 and first["next_cursor"], first
    # by name too
    by_name = api.admin_users(admin.access, q="Person 1", limit=100).json()["data"]
    assert any(x["id"] in ids for x in by_name), by_name
    # everyone, two at a time: unique ids, ours and the admin among them
    everyone = list_all(lambda c: api.admin_users(admin.access, limit=2, cursor=c), 2)
    all_ids = [x["id"] for x in everyone]
    assert len(all_ids) == len(set(all_ids)), "duplicate users across pages"
    assert ids | {admin.id} <= set(all_ids)
    assert api.admin_users(admin.access, q=unique("nomatch")).json() == {
        "data": [], "next_cursor": None}


def test_admin_users_bad_limit_is_400(api):
    admin = api.admin()
    assert_invalid(api.admin_users(admin.access, limit=0), "limit")
    assert_invalid(api.admin_users(admin.access, limit=101), "limit")


def test_admin_api_key_scopes(api):
    admin = api.admin()
    with_admin = admin.new_key(scopes=["chat", "admin"])
    assert api.admin_users(with_admin["key"], limit=1).status == 200
    without = admin.new_key(scopes=["chat"])
    assert_forbidden(api.admin_users(without["key"], limit=1))


def test_admin_disable_and_enable_user(api):
    admin = api.admin()
    u = api.new_user()
    key = u.new_key()["key"]
    r = api.admin_patch(admin.access, u.id, {"is_active": False})
    assert r.status == 200, r
    assert check_user(r.json(), u.email)["is_active"] is False
    assert_unauthenticated(api.me(u.access))
    assert_unauthenticated(api.me(key))
    assert_unauthenticated(api.call("GET", "/users/me", api_key=key))
    assert_unauthenticated(api.login(u.email, u.password))
    assert_unauthenticated(api.refresh(u.refresh))

    r = api.admin_patch(admin.access, u.id, {"is_active": True})
    assert r.status == 200 and r.json()["is_active"] is True, r
    t = check_tokens(api.login(u.email, u.password))
    assert api.me(t["access_token"]).status == 200
    assert_unauthenticated(api.me(u.access))  # issued before the disable: older ver
    assert_unauthenticated(api.refresh(u.refresh))


def test_admin_disable_suspends_keys_and_ends_sessions(api):
    """docs/api.md: disabling suspends the user's API keys (they work again when the user
    is enabled; revoke a key to end it for good) and ends their sessions for good."""
    admin = api.admin()
    u = api.new_user()
    key = u.new_key()["key"]
    assert api.admin_patch(admin.access, u.id, {"is_active": False}).status == 200
    assert_unauthenticated(api.me(key))
    assert_unauthenticated(api.me(u.access))
    assert api.admin_patch(admin.access, u.id, {"is_active": True}).status == 200
    assert api.me(key).status == 200
    assert_unauthenticated(api.me(u.access))
    assert_unauthenticated(api.refresh(u.refresh))


def test_admin_role_change_invalidates_tokens(api):
    admin = api.admin()
    u = api.new_user()
    key = u.new_key()["key"]
    assert api.me(key).status == 200
    r = api.admin_patch(admin.access, u.id, {"role": "admin"})
    assert r.status == 200 and r.json()["role"] == "admin", r
    assert_unauthenticated(api.me(u.access))
    assert api.me(key).status == 200  # keys outlive a role change; their admin scope follows the role
    assert_unauthenticated(api.refresh(u.refresh))
    t = check_tokens(api.login(u.email, u.password))
    _, claims, _ = jwt_parts(t["access_token"])
    assert claims["role"] == "admin" and claims["ver"] > 0, claims
    assert api.me(t["access_token"]).json()["role"] == "admin"
    assert api.admin_users(t["access_token"], limit=1).status == 200
    # and back
    r = api.admin_patch(admin.access, u.id, {"role": "user"})
    assert r.status == 200 and r.json()["role"] == "user", r
    assert_unauthenticated(api.me(t["access_token"]))


def test_demoted_admin_key_loses_admin(api):
    admin = api.admin()
    u = api.new_user()
    assert api.admin_patch(admin.access, u.id, {"role": "admin"}).status == 200
    u.relogin()
    k = u.new_key(scopes=["chat", "admin"])
    assert api.admin_users(k["key"], limit=1).status == 200
    assert api.admin_patch(admin.access, u.id, {"role": "user"}).status == 200
    r = api.admin_users(k["key"], limit=1)
    assert r.status in (401, 403), r  # 401 when the role change ended the key


def test_admin_cannot_disable_or_demote_self(api):
    admin = api.admin()
    assert_error_json(api.admin_patch(admin.access, admin.id, {"is_active": False}), 400,
                      "invalid_request")
    r = api.admin_patch(admin.access, admin.id, {"role": "user"})
    assert 400 <= r.status < 500, r
    me = api.me(admin.access)
    assert me.status == 200 and me.json()["role"] == "admin" and me.json()["is_active"], me


def test_admin_patch_validation(api):
    admin = api.admin()
    u = api.new_user()
    assert_not_found(api.admin_patch(admin.access, str(uuid.uuid4()), {"is_active": True}))
    assert_invalid(api.admin_patch(admin.access, u.id, {"role": "superuser"}), "role")
    assert_invalid(api.admin_patch(admin.access, u.id, {"is_active": "no"}), "is_active")
    assert api.me(u.access).json()["role"] == "user"
