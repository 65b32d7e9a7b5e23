"""The chat turn over HTTP (docs/api.md "Chat"): POST /conversations/{id}/messages streams
the answer as Server-Sent Events (or returns it whole with "stream": false) from the
built-in demo models, and stores it as it grows; failures end the stream with an error
event and leave the message stored with status "error".
"""

import json
import re
import socket
import time

import pytest

from accounts_client import assert_not_found


# ------------------------------------------------------------------------ helpers


def conversation(api, user, **body) -> str:
    r = api.call("POST", "/conversations", body, token=user.access)
    assert r.status == 201, r
    return r.json()["id"]


def send(api, user, cid, body, **kw):
    return api.call("POST", f"/conversations/{cid}/messages", body, token=user.access, **kw)


def parse_sse(text: str) -> list[dict]:
    """Each event as {"event", "id", "data"} (data parsed as JSON)."""
    events = []
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            events.append({"event": fields.get("event"), "id": int(fields["id"]), "data": json.loads(fields["data"])})
    return events


def branch(api, user, cid, **params) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    r = api.call("GET", f"/conversations/{cid}/messages?limit=100&{query}", token=user.access)
    assert r.status == 200, r
    return r.json()["data"]


def wait_for_status(api, user, cid, message_id, want, deadline_s=10.0) -> dict:
    deadline = time.monotonic() + deadline_s
    while True:
        found = [m for m in branch(api, user, cid) if m["id"] == message_id]
        if found and found[0]["status"] == want:
            return found[0]
        assert time.monotonic() < deadline, f"message {message_id} never reached {want}: {found}"
        time.sleep(0.1)


# ------------------------------------------------------------------------ tests


def test_streamed_turn_events_and_stored_answer(api):
    user = api.new_user()
    cid = conversation(api, user, system_prompt="Be brief.")
    r = send(api, user, cid, {"content": "What is chatd?"}, timeout=30)
    assert r.status == 200, r
    assert r.headers.get("Content-Type", "").startswith("text/event-stream"), r
    assert r.headers.get("Cache-Control") == "no-cache"
    assert r.headers.get("X-Accel-Buffering") == "no"
    events = parse_sse(r.body.decode())
    kinds = [e["event"] for e in events]
    assert kinds[0] == "message.created" and kinds[-1] == "message.completed", kinds
    assert set(kinds[1:-1]) == {"delta"} and len(kinds) > 3, kinds
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["data"]["type"] == e["event"] for e in events)
    created = events[0]["data"]
    assert created["conversation_id"] == cid
    answer = "".join(e["data"]["content"] for e in events if e["event"] == "delta")
    assert "What is chatd?" in answer  # the demo quotes the prompt back
    completed = events[-1]["data"]
    assert completed["finish_reason"] == "stop"
    assert completed["usage"]["completion_tokens"] == len(kinds) - 2
    assert completed["usage"]["prompt_tokens"] > 0

    messages = branch(api, user, cid)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["id"] == created["user_message_id"]
    stored = messages[1]
    assert stored["id"] == created["assistant_message_id"]
    assert stored["parent_id"] == messages[0]["id"]
    assert stored["status"] == "complete" and stored["content"] == answer
    assert stored["model"] == "demo" and stored["finish_reason"] == "stop"
    assert stored["usage"] == {"prompt_tokens": completed["usage"]["prompt_tokens"],
                               "completion_tokens": completed["usage"]["completion_tokens"]}


def test_unstreamed_turn_returns_the_stored_message(api):
    user = api.new_user()
    cid = conversation(api, user)
    r = send(api, user, cid, {"content": "Say something", "stream": False, "max_tokens": 4})
    assert r.status == 200, r
    message = r.json()
    assert message["role"] == "assistant" and message["status"] == "complete"
    assert message["finish_reason"] == "length"
    assert message["usage"]["completion_tokens"] == 4
    assert len(message["content"].split()) == 4
    assert branch(api, user, cid)[-1] == message


def test_the_context_carries_the_conversation(api):
    user = api.new_user()
    cid = conversation(api, user)
    send(api, user, cid, {"content": "first question", "stream": False})
    second = send(api, user, cid, {"content": "second question", "stream": False}).json()
    first_usage = branch(api, user, cid)[1]["usage"]["prompt_tokens"]
    assert second["usage"]["prompt_tokens"] > first_usage  # history went along
    assert [m["role"] for m in branch(api, user, cid)] == ["user", "assistant", "user", "assistant"]


def test_editing_the_first_message_makes_a_sibling_branch(api):
    user = api.new_user()
    cid = conversation(api, user)
    send(api, user, cid, {"content": "original", "stream": False})
    edited = send(api, user, cid, {"content": "edited", "parent_id": None, "stream": False}).json()
    messages = branch(api, user, cid, include="siblings")
    assert [m["content"] for m in messages][0] == "edited"
    assert messages[-1]["id"] == edited["id"]
    assert len(messages[0]["siblings"]["ids"]) == 2 and messages[0]["siblings"]["index"] == 1


def test_provider_failure_ends_with_an_error_event_and_is_stored(api):
    user = api.new_user()
    cid = conversation(api, user)
    r = send(api, user, cid, {"content": "fail please", "model": "demo-error"})
    assert r.status == 200, r
    events = parse_sse(r.body.decode())
    assert [e["event"] for e in events] == ["message.created", "error"]
    assert events[1]["data"]["error"]["code"] == "upstream_unavailable"
    stored = branch(api, user, cid)[-1]
    assert stored["status"] == "error" and stored["error"], stored


@pytest.mark.slow
def test_a_stalled_upstream_hits_the_idle_timeout(make_server):
    from accounts_client import Api
    api = Api(make_server(LLM_IDLE_TIMEOUT="400ms").port)
    user = api.new_user()
    cid = conversation(api, user)
    started = time.monotonic()
    r = send(api, user, cid, {"content": "stall", "model": "demo-stall"}, timeout=30)
    assert time.monotonic() - started < 10
    events = parse_sse(r.body.decode())
    assert events[-1]["event"] == "error" and events[-1]["data"]["error"]["code"] == "upstream_timeout", events
    assert [e["event"] for e in events].count("delta") >= 1
    stored = branch(api, user, cid)[-1]
    assert stored["status"] == "error" and stored["content"], stored


def test_a_client_that_leaves_does_not_lose_the_answer(api, accounts_server):
    user = api.new_user()
    cid = conversation(api, user)
    body = json.dumps({"content": "keep going without me"}).encode()
    with socket.create_connection(("127.0.0.1", accounts_server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /api/v1/conversations/{cid}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {user.access}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        received = b""
        while b"event: delta" not in received:
            chunk = sock.recv(4096)
            assert chunk, received
            received += chunk
    found = re.search(rb'"assistant_message_id":"([0-9a-f-]{36})"', received)
    assert found, received
    assistant_id = found.group(1).decode()
    stored = wait_for_status(api, user, cid, assistant_id, "complete")
    assert "keep going without me" in stored["content"]


def test_bad_requests_store_nothing(api):
    user, other = api.new_user(), api.new_user()
    cid = conversation(api, user)
    for body, param in [({}, "content"), ({"content": ""}, "content"), ({"content": 5}, "content"),
                        ({"content": "x", "temperature": 3}, "temperature"),
                        ({"content": "x", "max_tokens": 0}, "max_tokens"),
                        ({"content": "x", "stream": "yes"}, "stream")]:
        r = send(api, user, cid, body)
        assert r.status == 400 and r.json()["error"]["param"] == param, (body, r)
    r = send(api, user, cid, {"content": "x", "model": "no-such-model"})
    assert r.status == 404 and r.json()["error"]["param"] == "model", r
    assert branch(api, user, cid) == []
    # someone else's conversation answers like a missing one, and gains nothing
    assert_not_found(send(api, other, cid, {"content": "intrusion"}))
    assert branch(api, user, cid) == []


def test_models_lists_the_chat_models(api):
    user = api.new_user()
    r = api.call("GET", "/models", token=user.access)
    assert r.status == 200, r
    ids = [m["id"] for m in r.json()["data"]]
    assert "demo" in ids and "demo-embedding" not in ids
    assert [m for m in r.json()["data"] if m["default"]][0]["id"] == "demo"


# ------------------------------------------------------------------------ cancel


class StreamingClient:
    """A raw SSE request kept open, so a test can act while the answer is streaming."""

    def __init__(self, port, token, cid, body):
        data = json.dumps(body).encode()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock.sendall(
            f"POST /api/v1/conversations/{cid}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        self.received = b""

    def read_until(self, marker: bytes) -> None:
        while marker not in self.received:
            chunk = self.sock.recv(4096)
            assert chunk, self.received
            self.received += chunk

    def assistant_id(self) -> str:
        self.read_until(b"event: delta")
        return re.search(rb'"assistant_message_id":"([0-9a-f-]{36})"', self.received).group(1).decode()

    def close(self):
        self.sock.close()


def test_owner_cancels_a_streaming_answer(api, accounts_server):
    user, other = api.new_user(), api.new_user()
    cid = conversation(api, user)
    client = StreamingClient(accounts_server.port, user.access, cid, {"content": "long one", "model": "demo-slow"})
    try:
        mid = client.assistant_id()
        # someone else cannot, and learns nothing
        assert_not_found(api.call("POST", f"/conversations/{cid}/messages/{mid}/cancel", token=other.access))
        started = time.monotonic()
        r = api.call("POST", f"/conversations/{cid}/messages/{mid}/cancel", token=user.access)
        assert r.status == 202, r
        client.read_until(b"event: message.completed")
        assert time.monotonic() - started < 1.0, "the generation did not stop within 1 s"
        assert b'"finish_reason":"cancelled"' in client.received
    finally:
        client.close()
    stored = wait_for_status(api, user, cid, mid, "cancelled")
    assert stored["content"] and stored["finish_reason"] == "cancelled"
    assert stored["usage"]["completion_tokens"] < 100
    # cancelling what is no longer generating is a conflict, not a not-found
    r = api.call("POST", f"/conversations/{cid}/messages/{mid}/cancel", token=user.access)
    assert r.status == 409, r


def test_on_disconnect_cancel_stops_when_the_client_leaves(api, accounts_server):
    user = api.new_user()
    cid = conversation(api, user)
    client = StreamingClient(accounts_server.port, user.access, cid,
                             {"content": "bye", "model": "demo-slow", "on_disconnect": "cancel"})
    mid = client.assistant_id()
    client.close()
    stored = wait_for_status(api, user, cid, mid, "cancelled", deadline_s=5)
    assert stored["usage"]["completion_tokens"] < 100


def test_disabling_a_user_ends_their_streams(api, accounts_server):
    admin, user = api.admin(), api.new_user()
    cid = conversation(api, user)
    client = StreamingClient(accounts_server.port, user.access, cid, {"content": "still here?", "model": "demo-slow"})
    try:
        mid = client.assistant_id()
        assert api.admin_patch(admin.access, user.id, {"is_active": False}).status == 200
        client.read_until(b"event: message.completed")
        assert b'"finish_reason":"cancelled"' in client.received
    finally:
        client.close()
    assert api.admin_patch(admin.access, user.id, {"is_active": True}).status == 200
    user.relogin()
    assert wait_for_status(api, user, cid, mid, "cancelled")["finish_reason"] == "cancelled"


def test_on_disconnect_is_validated(api):
    user = api.new_user()
    cid = conversation(api, user)
    r = send(api, user, cid, {"content": "x", "on_disconnect": "explode"})
    assert r.status == 400 and r.json()["error"]["param"] == "on_disconnect", r
