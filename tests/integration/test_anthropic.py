"""Anthropic's Messages API (POST /v1/messages) over raw HTTP, against bench/mock_upstream
(an OpenAI-compatible upstream that records the last request body): what the translated
request looks like upstream, the message and the stream events translated back, tool use
both ways, errors in Anthropic's shape with its statuses, and the demo model offline.
The official SDK is driven in tests/e2e/sdk/anthropic.test.mjs.
"""

import json
import re

import pytest

from accounts_client import Api
from chatd_testing import get, poll


@pytest.fixture(scope="module")
def client(gw):
    api = Api(gw.port)
    user = api.new_user()
    key = user.new_key(name="anthropic")["key"]
    return api, key


HELLO = [{"role": "user", "content": "hello"}]
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


def messages(api, key, body, **kw):
    return api.call("POST", "/v1/messages", body, api_key=key, headers=ANTHROPIC_HEADERS, **kw)


def last_request(mock) -> dict:
    r = get(mock.port, "/_mock/last_request")
    assert r.status == 200, r
    return r.json()


def sse(resp) -> list[tuple[str, dict]]:
    """(event name, data) of each event, asserting Anthropic's framing: event + data lines."""
    text = resp.body.decode()
    assert text.endswith("\n\n"), text[-200:]
    out = []
    for block in text.split("\n\n")[:-1]:
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        data = json.loads(lines[1][6:])
        assert data["type"] == lines[0][7:], block
        out.append((lines[0][7:], data))
    return out


def anthropic_error(resp, status: int, kind: str) -> str:
    assert resp.status == status, resp
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == kind, body
    return body["error"]["message"]


def test_a_message_round_trip(gw, client, upstream):
    api, key = client
    r = messages(api, key, {"model": "mock-model", "max_tokens": 64, "messages": HELLO})
    assert r.status == 200, r
    body = r.json()
    assert re.fullmatch(r"msg_[0-9a-f]{32}", body["id"]), body
    assert body["type"] == "message" and body["role"] == "assistant" and body["model"] == "mock-model", body
    assert body["content"] == [{"type": "text", "text": "tok0 tok1 tok2 tok3 tok4 "}], body
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None, body
    assert body["usage"]["input_tokens"] == 12 and body["usage"]["output_tokens"] == 5, body


def test_the_upstream_gets_the_request_in_openai_form(gw, client, upstream):
    api, key = client
    body = {
        "model": "mock-model", "max_tokens": 100, "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]},
        ],
        "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"],
        "metadata": {"user_id": "end-user-1"},
    }
    assert messages(api, key, body).status == 200
    seen = last_request(upstream)
    assert seen == {
        "model": "mock-model", "max_tokens": 100,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]},
        ],
        "temperature": 0.5, "top_p": 0.9, "stop": ["END"], "user": "end-user-1",
    }, seen


def test_a_stream_is_anthropics_event_sequence(gw, client, upstream):
    api, key = client
    r = messages(api, key, {"model": "mock-model", "max_tokens": 64, "messages": HELLO, "stream": True})
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/event-stream"), r
    assert last_request(upstream)["stream_options"] == {"include_usage": True}
    events = sse(r)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"], names
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"], names
    assert set(names[3:-3]) == {"content_block_delta"}, names
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["content"] == [] and start["stop_reason"] is None, start
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "tok0 tok1 tok2 tok3 tok4 "
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn", delta
    assert delta["usage"]["output_tokens"] == 5 and delta["usage"]["input_tokens"] == 12, delta


def test_tool_use_both_ways(gw, client, upstream):
    api, key = client
    tools = [{"name": "get_weather", "description": "Weather by city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    upstream.script([{"tool_arguments": '{"city":"Paris"}'}])
    r = messages(api, key, {"model": "mock-model", "max_tokens": 64, "messages": HELLO, "tools": tools,
                            "tool_choice": {"type": "any", "disable_parallel_tool_use": True}, "stream": True})
    seen = last_request(upstream)
    assert seen["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather by city", "parameters": tools[0]["input_schema"]}}], seen
    assert seen["tool_choice"] == "required" and seen["parallel_tool_calls"] is False, seen
    events = sse(r)
    start = next(d for n, d in events if n == "content_block_start" and d["content_block"]["type"] == "tool_use")
    block = start["content_block"]
    assert block["id"].startswith("call_") and block["name"] == "get_weather" and block["input"] == {}, block
    partial = "".join(d["delta"]["partial_json"] for n, d in events
                      if n == "content_block_delta" and d["index"] == start["index"])
    assert json.loads(partial) == {"city": "Paris"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"

    # The result goes back as a tool message right after the assistant's call.
    follow_up = HELLO + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": block["id"], "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"],
                                      "content": [{"type": "text", "text": "sunny, 24C"}]}]},
    ]
    r = messages(api, key, {"model": "mock-model", "max_tokens": 64, "messages": follow_up, "tools": tools})
    assert r.status == 200, r
    assert r.json()["content"] == [{"type": "text", "text": "tool said: sunny, 24C"}], r.json()
    assert last_request(upstream)["messages"] == HELLO + [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": block["id"], "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": block["id"], "content": "sunny, 24C"},
    ]


def test_a_non_streamed_tool_call_is_a_tool_use_block(gw, client, upstream):
    api, key = client
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    upstream.script([{"tool_arguments": '{"city":"Oslo"}'}])
    r = messages(api, key, {"model": "mock-model", "max_tokens": 64, "messages": HELLO, "tools": tools})
    body = r.json()
    assert body["stop_reason"] == "tool_use", body
    uses = [b for b in body["content"] if b["type"] == "tool_use"]
    assert len(uses) == 1 and uses[0]["name"] == "get_weather" and uses[0]["input"] == {"city": "Oslo"}, body


@pytest.mark.parametrize("body,param", [
    ({"messages": HELLO, "max_tokens": 8}, "model"),
    ({"model": "mock-model", "messages": HELLO}, "max_tokens"),
    ({"model": "mock-model", "max_tokens": 0, "messages": HELLO}, "max_tokens"),
    ({"model": "mock-model", "max_tokens": 8}, "messages"),
    ({"model": "mock-model", "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
    ({"model": "mock-model", "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "image"}]}]},
     "messages[0].content[0].source"),
    ({"model": "mock-model", "max_tokens": 8, "messages": HELLO, "temperature": 1.5}, "temperature"),
    ({"model": "mock-model", "max_tokens": 8, "messages": HELLO, "tools": [{"name": "x"}]}, "tools[0].input_schema"),
    ({"model": "mock-model", "max_tokens": 8, "messages": HELLO, "tool_choice": {"type": "any"}}, "tool_choice"),
])
def test_validation_is_an_invalid_request_error_naming_the_field(gw, client, upstream, body, param):
    api, key = client
    message = anthropic_error(messages(api, key, body), 400, "invalid_request_error")
    assert message.startswith(param), message
    assert upstream.stats()["requests"] == 0  # refused before any upstream call


def test_errors_have_anthropics_types_and_statuses(gw, client, upstream):
    api, key = client
    anthropic_error(api.call("POST", "/v1/messages", {"model": "mock-model", "max_tokens": 8, "messages": HELLO},
                             api_key="sk-nope", headers=ANTHROPIC_HEADERS), 401, "authentication_error")
    message = anthropic_error(messages(api, key, {"model": "nope", "max_tokens": 8, "messages": HELLO}), 404,
                              "not_found_error")
    assert "nope" in message
    upstream.script([{"status": 429, "retry_after": 7}])
    r = messages(api, key, {"model": "mock-model", "max_tokens": 8, "messages": HELLO})
    anthropic_error(r, 429, "rate_limit_error")
    assert r.headers.get("retry-after") == "7", r
    upstream.script([{"status": 500}])
    anthropic_error(messages(api, key, {"model": "mock-model", "max_tokens": 8, "messages": HELLO}), 502, "api_error")


def test_an_upstream_error_mid_stream_is_an_error_event(gw, client, upstream):
    api, key = client
    upstream.script([{"error_after": 2}])
    r = messages(api, key, {"model": "mock-model", "max_tokens": 8, "messages": HELLO, "stream": True})
    assert r.status == 200, r
    events = sse(r)
    name, data = events[-1]
    assert name == "error" and data["error"]["message"] == "mock upstream failed mid-stream", events
    assert "message_stop" not in [n for n, _ in events]


def test_a_stream_the_upstream_breaks_off_ends_with_an_error_event(gw, client, upstream):
    api, key = client
    upstream.script([{"break_after": 3}])
    r = messages(api, key, {"model": "mock-model", "max_tokens": 8, "messages": HELLO, "stream": True})
    name, data = sse(r)[-1]
    assert name == "error" and data["error"]["type"] == "api_error", data


def llm_requests(port: int, model: str, status: str) -> int:
    text = get(port, "/metrics").body.decode()
    found = re.search(rf'^llm_requests_total{{provider="openai",model="{model}",status="{status}"}} (\d+)$', text, re.M)
    return int(found.group(1)) if found else 0


def test_calls_are_counted_like_chat_completions(gw, client, upstream):
    api, key = client
    ok = llm_requests(gw.port, "mock-model", "ok")
    assert messages(api, key, {"model": "mock-model", "max_tokens": 8, "messages": HELLO, "stream": True}).status == 200
    assert messages(api, key, {"model": "mock-model", "max_tokens": 8, "messages": HELLO}).status == 200
    assert llm_requests(gw.port, "mock-model", "ok") == ok + 2


def test_a_client_that_leaves_mid_stream_aborts_the_upstream_call(gw, client, upstream):
    from chatd_testing import Conn, build_request
    import time
    api, key = client
    upstream.script([{"chunks": 400, "interval_ms": 50}])
    conn = Conn(gw.port, timeout=10)
    payload = json.dumps({"model": "mock-model", "max_tokens": 8, "messages": HELLO, "stream": True}).encode()
    conn.send(build_request("POST", "/v1/messages", {"x-api-key": key, "Content-Type": "application/json",
                                                      **ANTHROPIC_HEADERS}, payload, f"127.0.0.1:{gw.port}"))
    conn._read_until(b"content_block_delta", time.monotonic() + 10)
    conn.close()
    stats = poll(lambda: (s := upstream.stats())["abandoned"] == 1 and s, timeout=1.0, interval=0.02,
                 what="the upstream saw its client leave")
    assert stats["completed_streams"] == 0, stats


def test_the_demo_model_answers_offline(gw, client):
    api, key = client
    r = messages(api, key, {"model": "demo", "max_tokens": 4, "messages": HELLO})
    body = r.json()
    assert r.status == 200 and body["model"] == "demo" and body["stop_reason"] == "max_tokens", body
    assert body["content"][0]["type"] == "text" and body["content"][0]["text"], body
    r = messages(api, key, {"model": "demo", "max_tokens": 4, "messages": HELLO, "stream": True})
    events = sse(r)
    assert events[0][0] == "message_start" and events[-1][0] == "message_stop", events
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
