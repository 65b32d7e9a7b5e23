"""WebSocket /ws (docs/api.md "WebSocket"): the chat turn's events as JSON messages tagged
with the client's id, several turns at once on one socket, cancel and resume, the three
ways to authenticate, limits and close codes.
"""

import json
import struct
import time
import urllib.request

import pytest
import websocket  # Debian python3-websocket (websocket-client)

from test_chat_turn import StreamingClient, conversation, wait_for_status
from test_resume import events_in


def connect(port, token=None, subprotocols=None, header=None):
    headers = list(header or [])
    if token:
        headers.append(f"Authorization: Bearer {token}")
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", header=headers, subprotocols=subprotocols,
                                     timeout=15)
    return ws


def receive(ws) -> dict:
    return json.loads(ws.recv())


def ready(ws) -> dict:
    message = receive(ws)
    assert message["type"] == "ready", message
    return message


def turn_events(ws, client_id, until=("message.completed", "error")) -> list[dict]:
    """Messages for `client_id` until its final event (others are ignored)."""
    events = []
    while True:
        message = receive(ws)
        if message.get("id") != client_id:
            continue
        events.append(message)
        if message["type"] in until:
            return events


def close_code(ws) -> int:
    """Reads until the server's close frame and returns its code."""
    while True:
        frame = ws.recv_frame()  # raw: no automatic close reply to a socket already gone
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", frame.data[:2])[0]


def test_a_turn_over_a_websocket(api, accounts_server):
    user = api.new_user()
    cid = conversation(api, user)
    ws = connect(accounts_server.port, token=user.access)
    try:
        assert ready(ws)["user_id"] == user.id
        ws.send(json.dumps({"type": "chat", "id": "t1", "conversation_id": cid, "content": "hello over ws"}))
        events = turn_events(ws, "t1")
    finally:
        ws.close()
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message.created" and kinds[-1] == "message.completed", kinds
    assert set(kinds[1:-1]) == {"delta"}
    assert [e["event_id"] for e in events] == list(range(1, len(events) + 1))
    mid = events[0]["assistant_message_id"]
    stored = wait_for_status(api, user, cid, mid, "complete")
    assert stored["content"] == "".join(e.get("content", "") for e in events)


def test_browser_style_authentication(api, accounts_server):
    user = api.new_user()
    cid = conversation(api, user)
    # the token in Sec-WebSocket-Protocol; the server selects "chatd", never echoes the token
    ws = connect(accounts_server.port, subprotocols=["chatd", f"bearer.{user.access}"])
    try:
        assert ws.getsubprotocol() == "chatd"
        ready(ws)
    finally:
        ws.close()
    # or in a first message
    ws = connect(accounts_server.port)
    try:
        ws.send(json.dumps({"type": "auth", "token": user.access}))
        ready(ws)
        ws.send(json.dumps({"type": "chat", "id": 7, "conversation_id": cid, "content": "x", "stream": True}))
        assert turn_events(ws, 7)[-1]["type"] == "message.completed"
    finally:
        ws.close()


def test_bad_credentials_are_refused(api, accounts_server):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(accounts_server.port, token="not-a-token")
    assert refused.value.status_code == 401
    ws = connect(accounts_server.port)
    try:
        ws.send(json.dumps({"type": "auth", "token": "not-a-token"}))
        assert receive(ws)["type"] == "error"
        assert close_code(ws) == 1008
    finally:
        ws.close()
    ws = connect(accounts_server.port)
    try:
        ws.send(json.dumps({"type": "chat", "id": 1, "conversation_id": "x", "content": "no auth yet"}))
        assert receive(ws)["error"]["code"] == "unauthenticated"
        assert close_code(ws) == 1008
    finally:
        ws.close()
    # not an upgrade
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{accounts_server.port}/ws", timeout=5)
        raise AssertionError("a plain GET /ws must be refused")
    except urllib.error.HTTPError as error:
        assert error.code == 426 and error.headers["Upgrade"] == "websocket"


def test_several_turns_at_once_and_cancel(api, accounts_server):
    user, other = api.new_user(), api.new_user()
    cid = conversation(api, user)
    ws = connect(accounts_server.port, token=user.access)
    try:
        ready(ws)
        ws.send(json.dumps({"type": "chat", "id": "slow", "conversation_id": cid, "content": "a", "model": "demo-slow"}))
        ws.send(json.dumps({"type": "chat", "id": "fast", "conversation_id": cid, "content": "b", "max_tokens": 5}))
        by_id = {"slow": [], "fast": []}
        while not by_id["fast"] or by_id["fast"][-1]["type"] != "message.completed":
            message = receive(ws)
            by_id[message["id"]].append(message)
        assert by_id["slow"] and by_id["slow"][-1]["type"] != "message.completed", "the slow turn is still running"
        slow_mid = by_id["slow"][0]["assistant_message_id"]
        # someone else cannot cancel it over HTTP; the owner can over the socket
        r = api.call("POST", f"/conversations/{cid}/messages/{slow_mid}/cancel", token=other.access)
        assert r.status == 404, r
        started = time.monotonic()
        ws.send(json.dumps({"type": "cancel", "id": "slow"}))
        final = turn_events(ws, "slow")[-1]
        assert time.monotonic() - started < 1.0
        assert final["type"] == "message.completed" and final["finish_reason"] == "cancelled"
        ws.send(json.dumps({"type": "cancel", "id": "nope"}))
        assert receive(ws)["error"]["code"] == "not_found"
    finally:
        ws.close()
    wait_for_status(api, user, cid, slow_mid, "cancelled")


def test_resume_over_a_websocket(api, accounts_server):
    user, other = api.new_user(), api.new_user()
    cid = conversation(api, user)
    client = StreamingClient(accounts_server.port, user.access, cid,
                             {"content": "resume me", "model": "demo-slow", "max_tokens": 20})
    mid = client.assistant_id()
    before = events_in(client.received)
    client.close()
    last = before[-1]["id"]
    ws = connect(accounts_server.port, token=other.access)
    try:
        ready(ws)
        ws.send(json.dumps({"type": "resume", "id": "r", "message_id": mid, "after": last}))
        assert receive(ws)["error"]["code"] == "not_found", "someone else's stream looks missing"
    finally:
        ws.close()
    ws = connect(accounts_server.port, token=user.access)
    try:
        ready(ws)
        ws.send(json.dumps({"type": "resume", "id": "r", "message_id": mid, "after": last}))
        after = turn_events(ws, "r")
    finally:
        ws.close()
    assert [e["event_id"] for e in after] == list(range(last + 1, last + 1 + len(after)))
    text = "".join(e["data"].get("content", "") for e in before) + "".join(e.get("content", "") for e in after)
    assert text == wait_for_status(api, user, cid, mid, "complete")["content"]


def test_bad_messages_get_errors_and_limits_close(api, accounts_server):
    user = api.new_user()
    cid = conversation(api, user)
    ws = connect(accounts_server.port, token=user.access)
    try:
        ready(ws)
        ws.send("{not json")
        assert receive(ws)["type"] == "error"
        ws.send(json.dumps({"type": "dance", "id": 1}))
        assert receive(ws)["error"]["param"] == "type"
        ws.send(json.dumps({"type": "chat", "id": 2, "conversation_id": cid}))
        assert receive(ws)["error"]["param"] == "content"
        ws.send(json.dumps({"type": "chat", "id": 3, "conversation_id": cid, "content": "x", "temperature": 9}))
        refused = receive(ws)
        assert refused["id"] == 3 and refused["error"]["param"] == "temperature", refused
        ws.send(json.dumps({"type": "ping"}))
        assert receive(ws) == {"type": "pong"}
        ws.send("x" * (70 * 1024))  # over WEBSOCKET_MAX_MESSAGE (64 KiB)
        assert close_code(ws) == 1009
    finally:
        ws.close()


def test_disabling_a_user_closes_their_sockets(api, accounts_server):
    admin, user = api.admin(), api.new_user()
    ws = connect(accounts_server.port, token=user.access)
    try:
        ready(ws)
        assert api.admin_patch(admin.access, user.id, {"is_active": False}).status == 200
        assert close_code(ws) == 1008
    finally:
        ws.close()
        assert api.admin_patch(admin.access, user.id, {"is_active": True}).status == 200


def test_the_connection_gauge(api, accounts_server):
    def gauge():
        body = urllib.request.urlopen(f"http://127.0.0.1:{accounts_server.port}/metrics", timeout=5).read().decode()
        line = [l for l in body.splitlines() if l.startswith("websocket_active_connections")][0]
        return float(line.split()[-1])

    user = api.new_user()
    base = gauge()
    ws = connect(accounts_server.port, token=user.access)
    ready(ws)
    assert gauge() == base + 1
    ws.close()
    deadline = time.monotonic() + 5
    while gauge() != base:
        assert time.monotonic() < deadline
        time.sleep(0.05)
