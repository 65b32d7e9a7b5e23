"""Following an answer again (docs/api.md "Resume"), keep-alive pings and regenerate:
a client that drops off mid-answer comes back with Last-Event-ID and gets exactly the
events it missed, then the rest; only the owner can; a quiet stream sends `: ping`.
"""

import json
import re
import time
import urllib.request

from accounts_client import assert_not_found
from test_chat_turn import StreamingClient, branch, conversation, parse_sse, send, wait_for_status

EVENT = re.compile(rb"event: (\S+)\nid: (\d+)\ndata: (.*?)\n\n")


def events_in(raw: bytes) -> list[dict]:
    """The SSE events in a raw (chunked) response: each event is one chunk."""
    return [{"event": e.decode(), "id": int(i), "data": json.loads(d)} for e, i, d in EVENT.findall(raw)]


def resume(port, token, cid, mid, last_event_id=None, query=""):
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/conversations/{cid}/messages/{mid}/stream{query}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def test_a_dropped_client_resumes_with_exactly_the_events_it_missed(api, accounts_server):
    user = api.new_user()
    cid = conversation(api, user)
    client = StreamingClient(accounts_server.port, user.access, cid,
                             {"content": "tell me a long story", "model": "demo-slow", "max_tokens": 30})
    mid = client.assistant_id()
    while len([e for e in events_in(client.received) if e["event"] == "delta"]) < 3:
        chunk = client.sock.recv(4096)
        assert chunk, client.received
        client.received += chunk
    before = events_in(client.received)
    client.close()  # the connection drops; the answer goes on
    last = before[-1]["id"]

    status, headers, body = resume(accounts_server.port, user.access, cid, mid, last_event_id=last)
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Cache-Control"] == "no-cache" and headers["X-Accel-Buffering"] == "no"
    after = parse_sse(body)
    assert after[0]["id"] == last + 1, (last, after[:2])
    assert [e["id"] for e in after] == list(range(last + 1, last + 1 + len(after)))
    assert after[-1]["event"] == "message.completed" and after[-1]["data"]["finish_reason"] == "length"
    text = "".join(e["data"].get("content", "") for e in before + after)
    stored = wait_for_status(api, user, cid, mid, "complete")
    assert text == stored["content"]

    # the whole stream again, from the start, with ?after= as well
    status, _, body = resume(accounts_server.port, user.access, cid, mid)
    assert status == 200 and [e["id"] for e in parse_sse(body)] == list(range(1, after[-1]["id"] + 1))
    status, _, body = resume(accounts_server.port, user.access, cid, mid, query=f"?after={last}")
    assert status == 200 and parse_sse(body) == after


def test_only_the_owner_can_resume_or_cancel(api, accounts_server):
    user, other = api.new_user(), api.new_user()
    cid = conversation(api, user)
    client = StreamingClient(accounts_server.port, user.access, cid, {"content": "mine", "model": "demo-slow"})
    try:
        mid = client.assistant_id()
        status, _, body = resume(accounts_server.port, other.access, cid, mid, last_event_id=1)
        assert status == 404, body
        assert_not_found(api.call("POST", f"/conversations/{cid}/messages/{mid}/cancel", token=other.access))
        status, _, body = resume(accounts_server.port, user.access, cid, "0192a0a0-0000-7000-8000-000000000000")
        assert status == 404, body
        status, _, body = resume(accounts_server.port, user.access, cid, mid, last_event_id="abc")
        assert status == 400 and json.loads(body)["error"]["param"] == "Last-Event-ID", body
        assert api.call("POST", f"/conversations/{cid}/messages/{mid}/cancel", token=user.access).status == 202
    finally:
        client.close()


def test_an_answer_past_the_resume_window_comes_back_as_a_snapshot(make_server):
    from accounts_client import Api

    server = make_server(STREAM_RESUME_WINDOW="0ms")
    api = Api(server.port)
    user = api.new_user()
    cid = conversation(api, user)
    r = send(api, user, cid, {"content": "short", "stream": False, "max_tokens": 5})
    assert r.status == 200, r
    message = r.json()
    time.sleep(1.1)  # finished generations are swept at most once a second
    send(api, user, cid, {"content": "again", "stream": False, "max_tokens": 1})
    status, _, body = resume(server.port, user.access, cid, message["id"], last_event_id=3)
    assert status == 200, body
    events = parse_sse(body.replace("event: message.snapshot\n", "event: message.snapshot\nid: 0\n"))
    assert [e["event"] for e in events] == ["message.snapshot"]
    assert events[0]["data"]["message"]["content"] == message["content"]
    assert events[0]["data"]["message"]["status"] == "complete"


def test_a_quiet_stream_sends_pings(make_server):
    from accounts_client import Api

    server = make_server(SSE_PING_INTERVAL="200ms", LLM_IDLE_TIMEOUT="1500ms")
    api = Api(server.port)
    user = api.new_user()
    cid = conversation(api, user)
    r = send(api, user, cid, {"content": "hello?", "model": "demo-stall"}, timeout=30)
    assert r.status == 200, r
    text = r.body.decode()
    assert text.count(": ping\n\n") >= 3, text
    assert parse_sse(text)[-1]["event"] == "error"


def test_regenerate_answers_the_same_question_on_a_new_branch(api):
    user, other = api.new_user(), api.new_user()
    cid = conversation(api, user)
    first = send(api, user, cid, {"content": "pick a number", "stream": False}).json()
    r = api.call("POST", f"/conversations/{cid}/messages/{first['id']}/regenerate", token=user.access, timeout=30)
    assert r.status == 200, r
    events = parse_sse(r.body.decode())
    assert events[0]["event"] == "message.created" and events[-1]["event"] == "message.completed"
    second_id = events[0]["data"]["assistant_message_id"]
    assert events[0]["data"]["user_message_id"] == first["parent_id"]
    active = branch(api, user, cid, include="siblings")
    assert [m["id"] for m in active] == [first["parent_id"], second_id]
    assert active[-1]["siblings"]["ids"] == [first["id"], second_id]
    r = api.call("POST", f"/conversations/{cid}/messages/{first['id']}/regenerate", {"stream": False},
                 token=user.access)
    assert r.status == 200 and r.json()["parent_id"] == first["parent_id"], r
    assert_not_found(api.call("POST", f"/conversations/{cid}/messages/{first['id']}/regenerate", token=other.access))
    r = api.call("POST", f"/conversations/{cid}/messages/{first['id']}/regenerate", {"max_tokens": 0},
                 token=user.access)
    assert r.status == 400 and r.json()["error"]["param"] == "max_tokens", r
