"""Conversations over HTTP (docs/api.md): create, list (keyset pages, q, pinned,
archived), get, patch, delete, validation, and isolation between users: someone else's
conversation answers exactly like one that does not exist, and is left untouched.

The tests share `accounts_server` and create their own users.
"""

import re
import urllib.parse
import uuid

import pytest

from accounts_client import (
    UUID7_RE, assert_forbidden, assert_invalid, assert_not_found, assert_unauthenticated,
    list_all, parse_time,
)

TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CONVERSATION_FIELDS = {"id", "title", "model", "system_prompt", "params", "pinned", "archived",
                       "created_at", "updated_at"}


# ------------------------------------------------------------------------ helpers


def create(api, user, body=None, **kw):
    return api.call("POST", "/conversations", {} if body is None else body, token=user.access, **kw)


def created(api, user, body=None) -> dict:
    r = create(api, user, body)
    assert r.status == 201, r
    return check_conversation(r.json())


def get(api, user, cid, **kw):
    return api.call("GET", f"/conversations/{cid}", token=user.access, **kw)


def patch(api, user, cid, body, **kw):
    return api.call("PATCH", f"/conversations/{cid}", body, token=user.access, **kw)


def delete(api, user, cid, **kw):
    return api.call("DELETE", f"/conversations/{cid}", token=user.access, **kw)


def list_page(api, user, **params):
    params = {k: v for k, v in params.items() if v is not None}
    qs = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    return api.call("GET", f"/conversations{'?' + qs if qs else ''}", token=user.access)


def list_ids(api, user, limit=100, **params) -> list[str]:
    items = list_all(lambda cursor: list_page(api, user, limit=limit, cursor=cursor, **params), limit)
    for item in items:
        check_conversation(item)
    return [c["id"] for c in items]


def newest_updated_first(items: list[dict]) -> list[str]:
    # chatd writes every timestamp as YYYY-MM-DDTHH:MM:SS.mmmZ (checked below), so text
    # order is time order, to the millisecond (accounts_client.parse_time drops the fraction).
    return [c["id"] for c in sorted(items, key=lambda c: (c["updated_at"], c["id"]), reverse=True)]


def check_conversation(obj: dict) -> dict:
    assert set(obj) == CONVERSATION_FIELDS, f"conversation fields: {sorted(obj)}"
    assert UUID7_RE.match(obj["id"]), obj
    assert isinstance(obj["title"], str) and isinstance(obj["model"], str), obj
    assert obj["system_prompt"] is None or isinstance(obj["system_prompt"], str), obj
    assert isinstance(obj["params"], dict), obj
    assert isinstance(obj["pinned"], bool) and isinstance(obj["archived"], bool), obj
    for key in ("created_at", "updated_at"):
        parse_time(obj[key])
        assert TIMESTAMP_RE.match(obj[key]), obj
    assert obj["updated_at"] >= obj["created_at"], obj
    return obj


# ------------------------------------------------------------------------- create


def test_create_with_defaults(api):
    user = api.new_user()
    r = create(api, user)
    assert r.status == 201, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    c = check_conversation(r.json())
    assert c["title"] == "" and c["model"] == "", c
    assert c["system_prompt"] is None and c["params"] == {}, c
    assert c["pinned"] is False and c["archived"] is False, c
    assert c["created_at"] == c["updated_at"], c


def test_create_with_every_field_and_get_it_back(api):
    user = api.new_user()
    body = {"title": "Grüße, 世界", "model": "gpt-4o-mini", "system_prompt": "Be brief.",
            "params": {"temperature": 0.7, "top_p": 1, "max_tokens": 512}}
    c = created(api, user, body)
    for key in ("title", "model", "system_prompt", "params"):
        assert c[key] == body[key], (key, c)
    r = get(api, user, c["id"])
    assert r.status == 200, r
    assert r.json() == c


def test_create_accepts_limits_exactly(api):
    user = api.new_user()
    c = created(api, user, {"title": "é" * 200, "model": "m" * 100, "system_prompt": "p" * 32768,
                            "params": {"temperature": 2, "top_p": 0, "max_tokens": 1_000_000}})
    assert c["title"] == "é" * 200 and len(c["system_prompt"]) == 32768, c


@pytest.mark.parametrize("body,param", [
    ({"title": "x" * 201}, "title"),
    ({"title": 5}, "title"),
    ({"model": "m" * 101}, "model"),
    ({"model": ["gpt"]}, "model"),
    ({"system_prompt": "p" * 32769}, "system_prompt"),
    ({"system_prompt": {"text": "hi"}}, "system_prompt"),
    ({"params": []}, "params"),
    ({"params": "temperature=1"}, "params"),
    ({"params": {"temperature": 2.5}}, "params.temperature"),
    ({"params": {"temperature": -0.1}}, "params.temperature"),
    ({"params": {"temperature": "1"}}, "params.temperature"),
    ({"params": {"top_p": 1.01}}, "params.top_p"),
    ({"params": {"max_tokens": 0}}, "params.max_tokens"),
    ({"params": {"max_tokens": 1_000_001}}, "params.max_tokens"),
    ({"params": {"max_tokens": 10.5}}, "params.max_tokens"),
    ({"params": {"frequency_penalty": 1}}, "params.frequency_penalty"),
])
def test_create_validates(api, body, param):
    user = api.new_user()
    assert_invalid(create(api, user, body), param)
    assert list_ids(api, user) == [], "a refused conversation was stored"


def test_create_needs_a_json_object(api):
    user = api.new_user()
    assert_invalid(create(api, user, ["title"]), None)
    r = api.call("POST", "/conversations", raw=b'{"title": ', token=user.access,
                 headers={"Content-Type": "application/json"})
    assert r.status == 400, r


# -------------------------------------------------------------------- get / patch


def test_patch_changes_only_what_is_sent_and_bumps_updated_at(api):
    user = api.new_user()
    c = created(api, user, {"title": "first", "model": "m1", "system_prompt": "be brief",
                            "params": {"temperature": 1}})
    r = patch(api, user, c["id"], {"pinned": True})
    assert r.status == 200, r
    p = check_conversation(r.json())
    assert p["pinned"] is True and p["archived"] is False, p
    for key in ("id", "title", "model", "system_prompt", "params", "created_at"):
        assert p[key] == c[key], (key, p)
    assert p["updated_at"] >= c["updated_at"], p

    r = patch(api, user, c["id"], {"title": "second", "model": "", "system_prompt": None,
                                   "params": {"max_tokens": 64}, "archived": True,
                                   "pinned": False})
    assert r.status == 200, r
    p2 = check_conversation(r.json())
    assert p2["title"] == "second" and p2["model"] == "", p2
    assert p2["system_prompt"] is None and p2["params"] == {"max_tokens": 64}, p2
    assert p2["archived"] is True and p2["pinned"] is False, p2
    assert p2["updated_at"] >= p["updated_at"], p2
    assert get(api, user, c["id"]).json() == p2


def test_patch_with_empty_object_keeps_fields(api):
    user = api.new_user()
    c = created(api, user, {"title": "keep", "system_prompt": "sp"})
    r = patch(api, user, c["id"], {})
    assert r.status == 200, r
    p = r.json()
    assert (p["title"], p["system_prompt"], p["params"]) == ("keep", "sp", {}), p


@pytest.mark.parametrize("body,param", [
    ({"title": "x" * 201}, "title"),
    ({"pinned": "yes"}, "pinned"),
    ({"archived": 1}, "archived"),
    ({"params": {"top_p": 2}}, "params.top_p"),
    ({"params": {"stop": ["x"]}}, "params.stop"),
    ({"system_prompt": 7}, "system_prompt"),
])
def test_patch_validates_and_changes_nothing(api, body, param):
    user = api.new_user()
    c = created(api, user, {"title": "orig"})
    assert_invalid(patch(api, user, c["id"], body), param)
    assert get(api, user, c["id"]).json() == c


def test_patched_conversation_moves_to_the_front(api):
    user = api.new_user()
    ids = [created(api, user, {"title": f"c{i}"})["id"] for i in range(3)]
    r = patch(api, user, ids[0], {"title": "touched"})
    assert r.status == 200, r
    items = list_all(lambda cursor: list_page(api, user, limit=2, cursor=cursor), 2)
    assert [c["id"] for c in items] == newest_updated_first(items)
    touched = next(c for c in items if c["id"] == ids[0])
    assert all(touched["updated_at"] >= c["updated_at"] for c in items), items


# ------------------------------------------------------------------------- delete


def test_delete(api):
    user = api.new_user()
    doomed, kept = created(api, user), created(api, user)
    r = delete(api, user, doomed["id"])
    assert r.status == 204 and r.body == b"", r
    assert_not_found(get(api, user, doomed["id"]))
    assert_not_found(delete(api, user, doomed["id"]))
    assert_not_found(patch(api, user, doomed["id"], {"title": "back?"}))
    assert list_ids(api, user) == [kept["id"]]


# --------------------------------------------------------------------------- list


def test_list_pages_newest_updated_first(api):
    user = api.new_user()
    ids = {created(api, user, {"title": f"page {i}"})["id"] for i in range(5)}
    pages = []

    def fetch(cursor):
        r = list_page(api, user, limit=2, cursor=cursor)
        pages.append(r.json()["data"] if r.status == 200 else None)
        return r

    items = list_all(fetch, 2)
    assert [len(p) for p in pages] == [2, 2, 1], pages
    assert {c["id"] for c in items} == ids and len(items) == 5
    assert [c["id"] for c in items] == newest_updated_first(items)
    # one page of everything says the same
    r = list_page(api, user, limit=100)
    assert r.status == 200, r
    assert r.json()["next_cursor"] is None
    assert [c["id"] for c in r.json()["data"]] == [c["id"] for c in items]


def test_list_default_limit_is_20(api):
    user = api.new_user()
    for _ in range(21):
        created(api, user)
    r = list_page(api, user)
    assert r.status == 200, r
    assert len(r.json()["data"]) == 20 and r.json()["next_cursor"], r


def test_list_q_filters_titles_case_insensitively_with_literal_wildcards(api):
    user = api.new_user()
    paris = created(api, user, {"title": "Trip to Paris"})["id"]
    notes = created(api, user, {"title": "PARIS notes"})["id"]
    pct = created(api, user, {"title": "100% done_now"})["id"]
    created(api, user, {"title": "Something else"})
    assert set(list_ids(api, user, q="paris")) == {paris, notes}
    assert set(list_ids(api, user, q="pArIs")) == {paris, notes}
    assert list_ids(api, user, q="%") == [pct]
    assert list_ids(api, user, q="e_n") == [pct]
    assert list_ids(api, user, q="p_r") == []
    assert list_ids(api, user, q="zzz") == []


def test_list_pinned_and_archived_filters(api):
    user = api.new_user()
    plain = created(api, user)["id"]
    pinned = created(api, user)["id"]
    archived = created(api, user)["id"]
    both = created(api, user)["id"]
    for cid, body in ((pinned, {"pinned": True}), (archived, {"archived": True}),
                      (both, {"pinned": True, "archived": True})):
        assert patch(api, user, cid, body).status == 200
    assert set(list_ids(api, user)) == {plain, pinned}  # archived hidden by default
    assert set(list_ids(api, user, archived="false")) == {plain, pinned}
    assert set(list_ids(api, user, archived="true")) == {archived, both}
    assert list_ids(api, user, pinned="true") == [pinned]
    assert list_ids(api, user, pinned="false") == [plain]
    assert list_ids(api, user, pinned="true", archived="true") == [both]
    assert list_ids(api, user, pinned="false", archived="true") == [archived]


@pytest.mark.parametrize("params,param", [
    ({"pinned": "yes"}, "pinned"),
    ({"pinned": "1"}, "pinned"),
    ({"archived": "TRUE"}, "archived"),
    ({"archived": ""}, "archived"),
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"cursor": "not a cursor"}, "cursor"),
    ({"cursor": "AAAA"}, "cursor"),
    ({"q": "q" * 201}, "q"),
])
def test_list_validates_query_parameters(api, params, param):
    user = api.new_user()
    assert_invalid(list_page(api, user, **params), param)


# ---------------------------------------------------------------------- isolation


def test_other_users_conversation_is_not_found_and_untouched(api):
    alice, bob = api.new_user(), api.new_user()
    bobs = created(api, bob, {"title": "bob's secret", "system_prompt": "bob's prompt",
                              "params": {"temperature": 0.3}})
    alices = created(api, alice, {"title": "alice's"})

    def missing(kind, cid):
        if kind == "GET":
            return get(api, alice, cid)
        if kind == "PATCH":
            return patch(api, alice, cid, {"title": "pwned", "archived": True,
                                           "system_prompt": None})
        return delete(api, alice, cid)

    for kind in ("GET", "PATCH", "DELETE"):
        reference = missing(kind, str(uuid.uuid4()))
        assert_not_found(reference)
        for cid in (bobs["id"], "not-a-uuid", bobs["id"].upper()):
            r = missing(kind, cid)
            assert_not_found(r)
            assert r.body == reference.body, (kind, cid, r, reference)

    r = get(api, bob, bobs["id"])
    assert r.status == 200, r
    assert r.json() == bobs, "bob's conversation changed"

    for params in ({}, {"archived": "true"}, {"q": "secret"}, {"pinned": "false"}):
        assert bobs["id"] not in list_ids(api, alice, **params), params
    assert list_ids(api, alice) == [alices["id"]]
    assert list_ids(api, bob) == [bobs["id"]]


def test_cursor_from_another_user_shows_only_your_own(api):
    alice, bob = api.new_user(), api.new_user()
    for _ in range(3):
        created(api, bob)
    mine = created(api, alice)["id"]
    r = list_page(api, bob, limit=1)
    cursor = r.json()["next_cursor"]
    assert cursor, r
    r = list_page(api, alice, limit=100, cursor=cursor)
    assert r.status == 200, r
    assert all(c["id"] == mine for c in r.json()["data"]), r


# ---------------------------------------------------------------------------- auth


def test_api_keys_need_the_chat_scope(api):
    user = api.new_user()
    c = created(api, user)
    gateway_only = user.new_key(scopes=["gateway"])["key"]
    calls = [("POST", "/conversations", {}), ("GET", "/conversations", None),
             ("GET", f"/conversations/{c['id']}", None),
             ("PATCH", f"/conversations/{c['id']}", {"title": "x"}),
             ("DELETE", f"/conversations/{c['id']}", None)]
    for method, path, body in calls:
        assert_forbidden(api.call(method, path, body, token=gateway_only))
    assert get(api, user, c["id"]).json() == c, "a refused call changed the conversation"

    chat_key = user.new_key(scopes=["chat"])["key"]
    r = api.call("POST", "/conversations", {"title": "via key"}, api_key=chat_key)
    assert r.status == 201, r
    via_key = r.json()["id"]
    r = api.call("GET", "/conversations", token=chat_key)
    assert r.status == 200, r
    assert {x["id"] for x in r.json()["data"]} == {c["id"], via_key}


def test_conversations_need_credentials(api):
    for method, path in (("POST", "/conversations"), ("GET", "/conversations"),
                         ("GET", f"/conversations/{uuid.uuid4()}"),
                         ("PATCH", f"/conversations/{uuid.uuid4()}"),
                         ("DELETE", f"/conversations/{uuid.uuid4()}")):
        assert_unauthenticated(api.call(method, path, {} if method in ("POST", "PATCH") else None))
