"""Message trees over HTTP (docs/api.md, "Messages"): what is reachable without a model —
the active branch of a new conversation, switching to a message that does not exist, and
isolation (someone else's conversation answers exactly like one that does not exist).
Branching, siblings and switching are covered by tests/unit/chat_messages_test.cpp and,
once the chat turn lands, end to end.

The tests share `accounts_server` and create their own users.
"""

import uuid

from accounts_client import assert_invalid, assert_not_found, assert_unauthenticated


def new_conversation(api, user) -> str:
    r = api.call("POST", "/conversations", {"title": "tree"}, token=user.access)
    assert r.status == 201, r
    return r.json()["id"]


def branch(api, user, cid, query="", **kw):
    return api.call("GET", f"/conversations/{cid}/messages{query}", token=user.access, **kw)


def switch(api, user, cid, body, query="", **kw):
    return api.call("PUT", f"/conversations/{cid}/current-leaf{query}", body, token=user.access, **kw)


def test_new_conversation_has_an_empty_branch(api):
    user = api.new_user()
    cid = new_conversation(api, user)
    for query in ("", "?include=siblings", "?limit=3&include=siblings"):
        r = branch(api, user, cid, query)
        assert r.status == 200, r
        assert r.json() == {"data": [], "next_cursor": None}, r


def test_branch_query_is_validated(api):
    user = api.new_user()
    cid = new_conversation(api, user)
    assert_invalid(branch(api, user, cid, "?limit=0"), "limit")
    assert_invalid(branch(api, user, cid, "?limit=101"), "limit")
    assert_invalid(branch(api, user, cid, "?include=everything"), "include")
    assert_invalid(branch(api, user, cid, "?cursor=bm90LWEtY3Vyc29y"), "cursor")


def test_switch_to_a_missing_message_is_not_found(api):
    user = api.new_user()
    cid = new_conversation(api, user)
    for message_id in (str(uuid.uuid4()), "not-a-uuid"):
        assert_not_found(switch(api, user, cid, {"message_id": message_id}))
    assert_invalid(switch(api, user, cid, {}), "message_id")
    assert_invalid(switch(api, user, cid, {"message_id": 7}), "message_id")
    # Still empty.
    assert branch(api, user, cid).json() == {"data": [], "next_cursor": None}


def test_other_users_conversation_is_not_found(api):
    alice, bob = api.new_user(), api.new_user()
    bobs = new_conversation(api, bob)
    body = {"message_id": str(uuid.uuid4())}
    reference_get = branch(api, alice, str(uuid.uuid4()))
    reference_put = switch(api, alice, str(uuid.uuid4()), body)
    assert_not_found(reference_get)
    assert_not_found(reference_put)
    for cid in (bobs, "not-a-uuid", bobs.upper()):
        r = branch(api, alice, cid)
        assert_not_found(r)
        assert r.body == reference_get.body, (cid, r, reference_get)
        r = switch(api, alice, cid, body)
        assert_not_found(r)
        assert r.body == reference_put.body, (cid, r, reference_put)
    # Bob still sees his.
    assert branch(api, bob, bobs).status == 200


def test_messages_need_authentication(api):
    user = api.new_user()
    cid = new_conversation(api, user)
    assert_unauthenticated(api.call("GET", f"/conversations/{cid}/messages"))
    assert_unauthenticated(api.call("PUT", f"/conversations/{cid}/current-leaf", {"message_id": str(uuid.uuid4())}))
