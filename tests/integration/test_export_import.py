"""Export and import (docs/api.md "Export and import"): GET /conversations/{id}/export as
JSON (every branch) or Markdown (the active branch), and POST /conversations/import taking
the JSON back as a new conversation with fresh ids — the same tree, sibling order, roles,
contents, statuses, usage and current leaf. Bad documents are 400 naming the field, and
store nothing.

Trees are made with chat turns on the built-in `demo` model (docs/api.md "Chat"):
sending with a `parent_id` edits a message, which starts a new branch.

The tests share `accounts_server` and create their own users.
"""

import json
import re
import socket
import time
import uuid

from accounts_client import (assert_error_json, assert_invalid, assert_not_found, assert_unauthenticated,
                             parse_time)

MESSAGE_FIELDS = {"id", "conversation_id", "parent_id", "role", "content", "status", "model", "usage",
                  "finish_reason", "error", "created_at", "updated_at"}


# ------------------------------------------------------------------------ helpers


def conversation(api, user, **body) -> str:
    r = api.call("POST", "/conversations", body, token=user.access)
    assert r.status == 201, r
    return r.json()["id"]


def turn(api, user, cid, content, parent_id=..., max_tokens=6) -> dict:
    """One turn; returns the assistant message."""
    body = {"content": content, "stream": False, "max_tokens": max_tokens}
    if parent_id is not ...:
        body["parent_id"] = parent_id
    r = api.call("POST", f"/conversations/{cid}/messages", body, token=user.access)
    assert r.status == 200, r
    return r.json()


def export(api, user, cid, fmt=None):
    query = "" if fmt is None else f"?format={fmt}"
    return api.call("GET", f"/conversations/{cid}/export{query}", token=user.access)


def export_json(api, user, cid) -> dict:
    r = export(api, user, cid)
    assert r.status == 200, r
    return r.json()


def import_(api, user, document, **kw):
    return api.call("POST", "/conversations/import", document, token=user.access, **kw)


def active_branch(api, user, cid) -> list[dict]:
    r = api.call("GET", f"/conversations/{cid}/messages?limit=100&include=siblings", token=user.access)
    assert r.status == 200, r
    return r.json()["data"]


def canonical(document) -> list:
    """The tree without ids: each node's fields and its children, siblings in order
    (created_at, then id — the order the API shows them in); the current leaf marked."""
    messages = document["messages"]
    leaf = document["conversation"]["current_leaf_id"]
    children = {}
    for m in messages:
        children.setdefault(m["parent_id"], []).append(m)

    def node(m):
        kids = sorted(children.get(m["id"], []), key=lambda k: (k["created_at"], k["id"]))
        return {"role": m["role"], "content": m["content"], "status": m["status"], "model": m["model"],
                "usage": m["usage"], "finish_reason": m["finish_reason"], "error": m["error"],
                "current_leaf": m["id"] == leaf, "children": [node(k) for k in kids]}

    roots = sorted(children.get(None, []), key=lambda k: (k["created_at"], k["id"]))
    return [node(m) for m in roots]


def branched_conversation(api, user):
    """Two roots (the first message edited), the first root with two branches (the second
    message edited), and the current leaf switched back to the first branch. Returns the
    conversation id and the messages by name."""
    cid = conversation(api, user, title="Trip: Paris/Rome \"2026\"", system_prompt="Be brief.",
                       params={"temperature": 0.5})
    a1 = turn(api, user, cid, "first question about herons")
    a2 = turn(api, user, cid, "second question about egrets")
    a2_edit = turn(api, user, cid, "second question, edited, about storks", parent_id=a1["id"])
    a1_edit = turn(api, user, cid, "first question, edited, about cranes", parent_id=None)
    r = api.call("PUT", f"/conversations/{cid}/current-leaf", {"message_id": a2["parent_id"]}, token=user.access)
    assert r.status == 200, r
    assert r.json()["current_leaf_id"] == a2["id"]
    return cid, {"a1": a1, "a2": a2, "a2_edit": a2_edit, "a1_edit": a1_edit}


def conversation_count(api, user) -> int:
    total = 0
    for archived in ("false", "true"):
        r = api.call("GET", f"/conversations?limit=100&archived={archived}", token=user.access)
        assert r.status == 200, r
        total += len(r.json()["data"])
    return total


# ------------------------------------------------------------------------ export


def test_json_export_holds_every_branch(api):
    user = api.new_user()
    cid, m = branched_conversation(api, user)
    r = export(api, user, cid)
    assert r.status == 200, r
    assert r.headers.get("Content-Type", "").startswith("application/json")
    assert r.headers.get("Content-Disposition") == 'attachment; filename="Trip-Paris-Rome-2026.json"'
    doc = r.json()
    assert doc["format"] == "chatd.conversation" and doc["version"] == 1
    c = doc["conversation"]
    assert c["id"] == cid and c["title"] == "Trip: Paris/Rome \"2026\"" and c["system_prompt"] == "Be brief."
    assert c["params"] == {"temperature": 0.5}
    assert c["current_leaf_id"] == m["a2"]["id"]
    messages = doc["messages"]
    assert len(messages) == 8
    for message in messages:
        assert set(message) == MESSAGE_FIELDS, message
        assert message["conversation_id"] == cid
    # Parents come before their children.
    seen = set()
    for message in messages:
        assert message["parent_id"] is None or message["parent_id"] in seen, message
        seen.add(message["id"])
    assert sum(1 for message in messages if message["parent_id"] is None) == 2
    by_id = {message["id"]: message for message in messages}
    for name in ("a1", "a2", "a2_edit", "a1_edit"):
        assert by_id[m[name]["id"]] == m[name]  # the stored assistant messages, as the API shows them
    assert {message["role"] for message in messages} == {"user", "assistant"}


def test_markdown_export_is_the_active_branch(api):
    user = api.new_user()
    cid, m = branched_conversation(api, user)
    r = export(api, user, cid, "markdown")
    assert r.status == 200, r
    assert r.headers.get("Content-Type") == "text/markdown; charset=utf-8"
    assert r.headers.get("Content-Disposition") == 'attachment; filename="Trip-Paris-Rome-2026.md"'
    text = r.body.decode()
    expected = (
        '# Trip: Paris/Rome "2026"\n\n'
        "## System prompt\n\nBe brief.\n\n"
        "## User\n\nfirst question about herons\n\n"
        f"## Assistant (demo)\n\n{m['a1']['content']}\n\n"
        "## User\n\nsecond question about egrets\n\n"
        f"## Assistant (demo)\n\n{m['a2']['content']}\n"
    )
    assert text == expected, text
    assert "storks" not in text and "cranes" not in text  # other branches are not in it


def test_markdown_export_marks_unfinished_answers_and_untitled_conversations(api):
    user = api.new_user()
    document = {"conversation": {"title": ""}, "messages": [
        {"id": "q", "role": "user", "content": "why?"},
        {"id": "a", "parent_id": "q", "role": "assistant", "content": "Because", "status": "error",
         "error": "upstream failed", "model": "demo"},
    ]}
    r = import_(api, user, document)
    assert r.status == 201, r
    r = export(api, user, r.json()["id"], "markdown")
    assert r.status == 200, r
    assert r.headers.get("Content-Disposition") == 'attachment; filename="conversation.md"'
    assert r.body.decode() == ("# Untitled conversation\n\n## User\n\nwhy?\n\n## Assistant (demo)\n\nBecause\n\n"
                               "_(failed: upstream failed)_\n")


def test_export_of_an_empty_conversation(api):
    user = api.new_user()
    cid = conversation(api, user, title="nothing yet")
    doc = export_json(api, user, cid)
    assert doc["messages"] == [] and doc["conversation"]["current_leaf_id"] is None
    r = export(api, user, cid, "markdown")
    assert r.status == 200 and r.body.decode() == "# nothing yet\n", r


def test_export_format_and_ownership(api):
    alice, bob = api.new_user(), api.new_user()
    bobs = conversation(api, bob, title="bob's")
    for fmt in ("xml", "JSON", "", "md"):
        assert_invalid(export(api, bob, bobs, fmt), "format")
    reference = export(api, alice, str(uuid.uuid4()))
    assert_not_found(reference)
    for cid in (bobs, "not-a-uuid"):
        r = export(api, alice, cid)
        assert_not_found(r)
        assert r.body == reference.body
    assert_not_found(export(api, alice, bobs, "markdown"))
    assert_unauthenticated(api.call("GET", f"/conversations/{bobs}/export"))
    assert export(api, bob, bobs, "json").status == 200


# ------------------------------------------------------------------------ import


def test_import_reproduces_the_conversation(api):
    user = api.new_user()
    cid, _ = branched_conversation(api, user)
    original = export_json(api, user, cid)

    r = import_(api, user, original)
    assert r.status == 201, r
    created = r.json()
    new_id = created["id"]
    assert new_id != cid
    for field in ("title", "model", "system_prompt", "params", "pinned", "archived"):
        assert created[field] == original["conversation"][field], field

    copy = export_json(api, user, new_id)
    assert canonical(copy) == canonical(original)
    old_ids = {m["id"] for m in original["messages"]}
    assert not old_ids & {m["id"] for m in copy["messages"]}  # fresh ids
    assert all(m["conversation_id"] == new_id for m in copy["messages"])
    # Times are kept (a millisecond tie may gain a millisecond), in the same order.
    for old, new in zip(original["messages"], copy["messages"]):
        delta = (parse_time(new["created_at"]) - parse_time(old["created_at"])).total_seconds()
        assert 0 <= delta < 0.05, (old, new)

    # The active branch and its forks read the same.
    def shape(branch):
        return [(m["role"], m["content"], m["siblings"]["index"], len(m["siblings"]["ids"])) for m in branch]
    assert shape(active_branch(api, user, new_id)) == shape(active_branch(api, user, cid))

    # Importing the copy again gives the same tree once more; the original is untouched.
    again = import_(api, user, copy)
    assert again.status == 201, again
    assert canonical(export_json(api, user, again.json()["id"])) == canonical(original)
    assert export_json(api, user, cid) == original

    # The imported text is searchable like any other.
    r = api.call("GET", "/search?q=storks&limit=100", token=user.access)
    assert r.status == 200, r
    assert {h["conversation_id"] for h in r.json()["data"]} == {cid, new_id, again.json()["id"]}


def test_import_fills_in_what_a_minimal_document_leaves_out(api):
    user = api.new_user()
    r = import_(api, user, {"conversation": {}, "messages": []})
    assert r.status == 201, r
    assert r.json()["title"] == "" and r.json()["params"] == {}
    assert active_branch(api, user, r.json()["id"]) == []

    # No current_leaf_id: the last message. No times: the import's, in list order.
    # A "streaming" answer (exported mid-generation) arrives "incomplete".
    document = {"conversation": {"title": "minimal", "pinned": True}, "messages": [
        {"id": "1", "role": "system", "content": "You are terse."},
        {"id": "2", "parent_id": "1", "role": "user", "content": "hi"},
        {"id": "3", "parent_id": "2", "role": "assistant", "content": "hel", "status": "streaming"},
        {"id": "4", "parent_id": "1", "role": "user", "content": "hello again"},
    ]}
    r = import_(api, user, document)
    assert r.status == 201, r
    assert r.json()["pinned"] is True
    branch = active_branch(api, user, r.json()["id"])
    assert [(m["role"], m["content"]) for m in branch] == [("system", "You are terse."), ("user", "hello again")]
    assert branch[1]["siblings"]["index"] == 1 and len(branch[1]["siblings"]["ids"]) == 2
    doc = export_json(api, user, r.json()["id"])
    statuses = {m["content"]: m["status"] for m in doc["messages"]}
    assert statuses == {"You are terse.": "complete", "hi": "complete", "hel": "incomplete",
                        "hello again": "complete"}
    times = [m["created_at"] for m in doc["messages"]]
    assert times == sorted(times) and len(set(times)) == 4


def test_import_takes_bodies_larger_than_the_default_limit(api):
    user = api.new_user()
    big = "x" * (1024 * 1024)  # the largest message; two of them pass MAX_BODY_SIZE (1 MiB)
    document = {"conversation": {"title": "big"}, "messages": [
        {"id": "a", "role": "user", "content": big},
        {"id": "b", "parent_id": "a", "role": "assistant", "content": big},
    ]}
    r = import_(api, user, document, timeout=60)
    assert r.status == 201, r
    doc = export_json(api, user, r.json()["id"])
    assert [len(m["content"]) for m in doc["messages"]] == [len(big), len(big)]


def test_a_large_export_read_slowly_arrives_whole(api):
    """More than the socket takes at once: chatd sends what fits with one send and the rest
    as the client makes room (its write timeout is far off)."""
    user = api.new_user()
    big = "y" * (1024 * 1024)
    document = {"conversation": {"title": "slow reader"}, "messages": [
        {"id": "a", "role": "user", "content": big},
        {"id": "b", "parent_id": "a", "role": "assistant", "content": big},
    ]}
    r = import_(api, user, document, timeout=60)
    assert r.status == 201, r
    cid = r.json()["id"]
    expected = export(api, user, cid).body
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's send fills up
    sock.settimeout(30)
    sock.connect(("127.0.0.1", api.port))
    try:
        sock.sendall((f"GET /api/v1/conversations/{cid}/export HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: Bearer {user.access}\r\nConnection: close\r\n\r\n").encode())
        time.sleep(0.5)  # chatd has sent what fits and waits for room
        received = bytearray()
        while chunk := sock.recv(16384):
            received += chunk
            if len(received) < 256 * 1024:
                time.sleep(0.001)  # slowly at first
    finally:
        sock.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    assert f"content-length: {len(expected)}".encode() in head.lower(), head
    assert body == expected


def good_document() -> dict:
    return {"format": "chatd.conversation", "version": 1,
            "conversation": {"title": "valid", "current_leaf_id": "b"},
            "messages": [{"id": "a", "parent_id": None, "role": "user", "content": "q"},
                         {"id": "b", "parent_id": "a", "role": "assistant", "content": "r",
                          "usage": {"prompt_tokens": 3, "completion_tokens": 1}}]}


def with_message(index, **fields) -> dict:
    doc = good_document()
    doc["messages"][index].update(fields)
    return doc


def test_bad_imports_are_400_and_store_nothing(api):
    user = api.new_user()
    before = conversation_count(api, user)
    cycle = good_document()
    cycle["messages"][0]["parent_id"] = "b"
    cycle["conversation"]["current_leaf_id"] = None
    two = good_document()
    two["messages"].append({"id": "c", "parent_id": "a", "role": "user", "content": "x"})
    many = {"conversation": {}, "messages": [{"id": str(i), "role": "user", "content": ""} for i in range(10_001)]}
    cases = [
        ({**good_document(), "format": "other"}, "format"),
        ({**good_document(), "version": 2}, "version"),
        ({**good_document(), "version": "1"}, "version"),
        ({"messages": []}, "conversation"),
        ({"conversation": [], "messages": []}, "conversation"),
        ({"conversation": {"title": "t" * 201}, "messages": []}, "conversation.title"),
        ({"conversation": {"title": 7}, "messages": []}, "conversation.title"),
        ({"conversation": {"params": {"temperature": 9}}, "messages": []}, "conversation.params.temperature"),
        ({"conversation": {"pinned": "yes"}, "messages": []}, "conversation.pinned"),
        ({"conversation": {}}, "messages"),
        ({"conversation": {}, "messages": {}}, "messages"),
        (many, "messages"),
        ({"conversation": {}, "messages": ["hello"]}, "messages[0]"),
        (with_message(1, id=None), "messages[1].id"),
        (with_message(1, id=""), "messages[1].id"),
        (with_message(1, id="a"), "messages[1].id"),
        (with_message(1, parent_id="nowhere"), "messages[1].parent_id"),
        (with_message(0, parent_id="b"), "messages[0].parent_id"),
        (with_message(0, parent_id="a"), "messages[0].parent_id"),
        (cycle, "messages[0].parent_id"),
        (with_message(0, role="robot"), "messages[0].role"),
        (with_message(0, role=None), "messages[0].role"),
        (with_message(1, status="done"), "messages[1].status"),
        (with_message(0, content=5), "messages[0].content"),
        (with_message(0, content=None), "messages[0].content"),
        (with_message(0, content="x" * (1024 * 1024 + 1)), "messages[0].content"),
        (with_message(1, model="m" * 101), "messages[1].model"),
        (with_message(1, usage={"prompt_tokens": -1}), "messages[1].usage.prompt_tokens"),
        (with_message(1, usage={"completion_tokens": 1.5}), "messages[1].usage.completion_tokens"),
        (with_message(1, usage=[1, 2]), "messages[1].usage"),
        (with_message(1, created_at="yesterday"), "messages[1].created_at"),
        ({**good_document(), "conversation": {"current_leaf_id": "zzz"}}, "current_leaf_id"),
        ({**two, "conversation": {"current_leaf_id": "a"}}, "current_leaf_id"),
        ({"conversation": {"current_leaf_id": "a"}, "messages": []}, "current_leaf_id"),
    ]
    for document, param in cases:
        r = import_(api, user, document, timeout=60)
        err = assert_invalid(r, param)
        assert err["message"], err
    for raw in (b"[]", b"{", b'"text"'):
        r = api.call("POST", "/conversations/import", raw=raw, token=user.access,
                     headers={"Content-Type": "application/json"})
        assert_error_json(r, 400, "invalid_request")
    assert conversation_count(api, user) == before
    # The good one is good.
    r = import_(api, user, good_document())
    assert r.status == 201, r
    assert conversation_count(api, user) == before + 1


def test_import_is_the_callers_and_needs_authentication(api):
    alice, bob = api.new_user(), api.new_user()
    r = import_(api, alice, good_document())
    assert r.status == 201, r
    cid = r.json()["id"]
    assert_not_found(export(api, bob, cid))
    assert api.call("GET", f"/conversations/{cid}", token=alice.access).status == 200
    assert_unauthenticated(api.call("POST", "/conversations/import", good_document()))
    r = api.call("POST", "/conversations/import", raw=json.dumps(good_document()).encode(), token=alice.access,
                 headers={"Content-Type": "text/plain"})
    assert_error_json(r, 415, "unsupported_media_type")
    assert re.fullmatch(r"[0-9a-f-]{36}", cid)
