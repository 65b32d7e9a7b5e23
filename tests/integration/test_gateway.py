"""The OpenAI-compatible gateway (/v1) over raw HTTP, where the SDKs hide details: what
reaches the upstream (bench/mock_upstream records the last request body), byte-level
stream framing, validation with `param`, error codes and statuses, and the client's
disconnect reaching the upstream. The official SDKs are driven in tests/e2e/sdk.
"""

import base64
import json
import re
import socket
import struct
import time

import pytest

from accounts_client import Api
from chatd_testing import Conn, assert_error_json, build_request, get, poll


@pytest.fixture(scope="module")
def client(gw):
    """(api, user, key): a user with a default API key (scopes chat + gateway)."""
    api = Api(gw.port)
    user = api.new_user()
    key = user.new_key(name="gateway")["key"]
    return api, user, key


def post(api, key, path, body, **kw):
    return api.call("POST", path, body, token=key, **kw)


def chat(api, key, body, **kw):
    return post(api, key, "/v1/chat/completions", body, **kw)


def events(resp) -> list[str]:
    """The data of each SSE event, in order (asserting the framing: data lines, blank line)."""
    text = resp.body.decode()
    assert text.endswith("\n\n"), text[-200:]
    out = []
    for block in text.split("\n\n")[:-1]:
        lines = block.split("\n")
        assert all(line.startswith("data: ") for line in lines), block
        out.append("\n".join(line[6:] for line in lines))
    return out


def last_request(mock) -> dict:
    r = get(mock.port, "/_mock/last_request")
    assert r.status == 200, r
    return r.json()


def openai_error(resp, status: int, code: str | None, param: str | None = None) -> dict:
    err = assert_error_json(resp, status, code)
    assert err["param"] == param, err
    return err


HELLO = [{"role": "user", "content": "hello"}]


# ----------------------------------------------------------------------------- auth


def test_credentials(gw, client):
    api, user, key = client
    r = api.call("GET", "/v1/models")
    err = openai_error(r, 401, "invalid_api_key")
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer"), r
    assert err["type"] == "invalid_request_error"
    openai_error(api.call("GET", "/v1/models", token="sk-chatd-not-a-key"), 401, "invalid_api_key")
    # The key in x-api-key (what the Anthropic SDK sends) works as well as a bearer.
    assert api.call("GET", "/v1/models", api_key=key).status == 200
    # A key without the gateway scope may not call /v1.
    chat_only = user.new_key(name="chat only", scopes=["chat"])["key"]
    r = chat(api, chat_only, {"model": "demo", "messages": HELLO})
    openai_error(r, 403, "permission_denied")
    # A signed-in user's access token may call it, as that user.
    r = chat(api, user.access, {"model": "demo", "messages": HELLO})
    assert r.status == 200, r


# ---------------------------------------------------------------------------- models


def test_models(gw, client):
    api, _, key = client
    r = api.call("GET", "/v1/models", token=key)
    assert r.status == 200, r
    body = r.json()
    assert body["object"] == "list"
    ids = {m["id"]: m for m in body["data"]}
    assert {"demo", "demo-embedding", "mock-model", "mock-embedding"} <= set(ids), ids
    for m in body["data"]:
        assert set(m) == {"id", "object", "created", "owned_by"}, m
        assert m["object"] == "model" and isinstance(m["created"], int), m
    r = api.call("GET", "/v1/models/demo-embedding", token=key)
    assert r.status == 200 and r.json()["id"] == "demo-embedding", r
    r = api.call("GET", "/v1/models/gpt-9", token=key)
    err = openai_error(r, 404, "model_not_found", "model")
    assert "gpt-9" in err["message"]


# ------------------------------------------------------------------------ validation


@pytest.mark.parametrize("body,param", [
    ({"messages": HELLO}, "model"),
    ({"model": "demo"}, "messages"),
    ({"model": "demo", "messages": []}, "messages"),
    ({"model": "demo", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"model": "demo", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"model": "demo", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"model": "demo", "messages": HELLO, "n": 0}, "n"),
    ({"model": "demo", "messages": HELLO, "temperature": 3}, "temperature"),
    ({"model": "demo", "messages": HELLO, "top_p": -0.1}, "top_p"),
    ({"model": "demo", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
    ({"model": "demo", "messages": HELLO, "max_completion_tokens": "ten"}, "max_completion_tokens"),
    ({"model": "demo", "messages": HELLO, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"model": "demo", "messages": HELLO, "tool_choice": "required"}, "tool_choice"),
    ({"model": "demo", "messages": HELLO, "response_format": {"type": "xml"}}, "response_format.type"),
    # No per-request upstream: chatd refuses what other gateways would honour.
    ({"model": "demo", "messages": HELLO, "base_url": "http://169.254.169.254/v1"}, "base_url"),
    ({"model": "demo", "messages": HELLO, "api_key": "sk-someone-elses"}, "api_key"),
    ({"model": "demo", "messages": HELLO, "api_base": "http://10.0.0.1/"}, "api_base"),
])
def test_validation_names_the_field(gw, client, upstream, body, param):
    api, _, key = client
    r = chat(api, key, body)
    err = openai_error(r, 400, "invalid_request", param)
    assert err["type"] == "invalid_request_error"
    assert upstream.stats()["requests"] == 0  # refused before any upstream call


def test_malformed_and_non_json_bodies(gw, client):
    api, _, key = client
    r = api.call("POST", "/v1/chat/completions", token=key, raw=b'{"model": "demo",',
                 headers={"Content-Type": "application/json"})
    err = openai_error(r, 400, "invalid_request")
    assert "line 1" in err["message"], err
    r = api.call("POST", "/v1/chat/completions", token=key, raw=b"model=demo",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error_json(r, 415, "unsupported_media_type")
    r = chat(api, key, {"model": "gpt-9", "messages": HELLO})
    openai_error(r, 404, "model_not_found", "model")
    r = chat(api, key, {"model": "demo-embedding", "messages": HELLO})
    openai_error(r, 400, "invalid_request", "model")


# ----------------------------------------------------------------------- pass-through


def test_the_upstream_gets_the_clients_fields_untouched(gw, client, upstream):
    api, _, key = client
    body = {
        "model": "mock-model",
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                  {"type": "image_url",
                                                   "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=",
                                                                 "detail": "high"}}]}],
        "temperature": 0.25, "top_p": 0.9, "seed": 7, "stop": ["\n\n"], "n": 1,
        "logprobs": True, "top_logprobs": 2, "max_completion_tokens": 64, "user": "end-user-1",
        "metadata": {"team": "search"}, "x_vendor_extension": {"nested": [1, 2.5, None, "é"]},
    }
    r = chat(api, key, body)
    assert r.status == 200, r
    seen = last_request(upstream)
    assert seen == body, seen  # the same JSON value: every field, the unknown one included
    assert "stream_options" not in seen


def test_a_stream_always_asks_for_usage_and_the_client_does_not_see_it(gw, client, upstream):
    api, _, key = client
    r = chat(api, key, {"model": "mock-model", "messages": HELLO, "stream": True,
                        "stream_options": {"include_usage": False}})
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/event-stream"), r
    seen = last_request(upstream)
    assert seen["stream_options"] == {"include_usage": True}, seen
    data = events(r)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all("usage" not in c or c["usage"] is None for c in chunks), chunks
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == \
        "tok0 tok1 tok2 tok3 tok4 "
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_client_that_asks_for_usage_gets_the_upstreams_chunk(gw, client, upstream):
    api, _, key = client
    r = chat(api, key, {"model": "mock-model", "messages": HELLO, "stream": True,
                        "stream_options": {"include_usage": True}})
    data = events(r)
    usage = json.loads(data[-2])
    assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 12, "completion_tokens": 5,
                                                         "total_tokens": 17}, usage


def test_a_non_streamed_answer_is_the_upstreams(gw, client, upstream):
    api, _, key = client
    r = chat(api, key, {"model": "mock-model", "messages": HELLO})
    assert r.status == 200, r
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-"), body
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "tok0 tok1 tok2 tok3 tok4 "}
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def test_tool_calls_pass_through_both_ways(gw, client, upstream):
    api, _, key = client
    tools = [{"type": "function", "function": {"name": "get_weather",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    upstream.script([{"tool_arguments": '{"city":"Paris"}'}])
    r = chat(api, key, {"model": "mock-model", "messages": HELLO, "tools": tools, "tool_choice": "auto",
                        "stream": True})
    deltas = [json.loads(d)["choices"][0] for d in events(r)[:-1]]
    calls = [c["delta"]["tool_calls"][0] for c in deltas if c["delta"].get("tool_calls")]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "get_weather", calls
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city":"Paris"}'
    assert deltas[-1]["finish_reason"] == "tool_calls"
    # The tool's result goes back; the upstream answers from it.
    follow_up = HELLO + [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": calls[0]["id"], "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny, 24C"},
    ]
    r = chat(api, key, {"model": "mock-model", "messages": follow_up, "tools": tools})
    assert r.status == 200, r
    assert r.json()["choices"][0]["message"]["content"] == "tool said: sunny, 24C"
    assert last_request(upstream)["messages"] == follow_up


# ------------------------------------------------------------------ streaming hygiene


def test_done_is_sent_even_when_the_upstream_forgets_it(gw, client, upstream):
    # no_usage: the upstream ignores include_usage (chatd then estimates the usage)
    api, _, key = client
    upstream.script([{"no_usage": True}])
    r = chat(api, key, {"model": "mock-model", "messages": HELLO, "stream": True})
    data = events(r)
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1, data


def test_an_upstream_error_mid_stream_ends_with_an_error_event(gw, client, upstream):
    api, _, key = client
    upstream.script([{"error_after": 2}])
    r = chat(api, key, {"model": "mock-model", "messages": HELLO, "stream": True})
    assert r.status == 200, r  # the stream had begun
    data = events(r)
    assert "[DONE]" not in data, data
    err = json.loads(data[-1])["error"]
    assert err["message"] == "mock upstream failed mid-stream", err
    assert sum(1 for d in data if "tok" in d) == 2


def test_a_stream_the_upstream_breaks_off_ends_with_an_error_event(gw, client, upstream):
    api, _, key = client
    upstream.script([{"break_after": 3}])
    r = chat(api, key, {"model": "mock-model", "messages": HELLO, "stream": True})
    data = events(r)
    assert "[DONE]" not in data, data
    err = json.loads(data[-1])["error"]
    assert err["code"] == "upstream_unavailable" and "before the answer was complete" in err["message"], err


def test_a_stalled_upstream_ends_the_stream_with_a_timeout_event(gw, client, upstream):
    api, _, key = client
    upstream.script([{"stall_after": 1}])
    r = chat(api, key, {"model": "mock-model", "messages": HELLO, "stream": True}, timeout=10)
    err = json.loads(events(r)[-1])["error"]
    assert err["code"] == "upstream_timeout", err


def open_stream(port: int, key: str, body: dict) -> Conn:
    """Sends a streamed completion on a raw connection and reads until its first event."""
    conn = Conn(port, timeout=10)
    payload = json.dumps(body).encode()
    conn.send(build_request("POST", "/v1/chat/completions",
                            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, payload,
                            f"127.0.0.1:{port}"))
    conn._read_until(b"data: ", time.monotonic() + 10)
    return conn


def close_abruptly(conn: Conn) -> float:
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    return time.monotonic()


def test_a_client_that_leaves_mid_stream_aborts_the_upstream_call(gw, client, upstream):
    api, _, key = client
    upstream.script([{"chunks": 400, "interval_ms": 50}])
    conn = open_stream(gw.port, key, {"model": "mock-model", "messages": HELLO, "stream": True})
    assert upstream.stats()["active_streams"] == 1
    left = time.monotonic()
    conn.close()  # an ordinary close (FIN), as a browser or SDK abort does
    stats = poll(lambda: (s := upstream.stats())["abandoned"] == 1 and s, timeout=1.0,
                 interval=0.02, what="the upstream saw its client leave")
    assert time.monotonic() - left < 1.0
    assert stats["completed_streams"] == 0, stats


def llm_requests(port: int, model: str, status: str) -> int:
    text = get(port, "/metrics").body.decode()
    found = re.search(rf'^llm_requests_total{{provider="openai",model="{model}",status="{status}"}} (\d+)$', text, re.M)
    return int(found.group(1)) if found else 0


def test_calls_are_counted_with_how_they_ended(gw, client, upstream):
    api, _, key = client
    ok, cancelled = llm_requests(gw.port, "mock-model", "ok"), llm_requests(gw.port, "mock-model", "cancelled")
    assert chat(api, key, {"model": "mock-model", "messages": HELLO, "stream": True}).status == 200
    assert llm_requests(gw.port, "mock-model", "ok") == ok + 1
    upstream.script([{"chunks": 400, "interval_ms": 50}])
    open_stream(gw.port, key, {"model": "mock-model", "messages": HELLO, "stream": True}).close()
    poll(lambda: llm_requests(gw.port, "mock-model", "cancelled") == cancelled + 1, timeout=2, interval=0.02,
         what="the abandoned stream settled as cancelled")


# wait_s 0: the client leaves before the server has started watching it (it starts 50–100
# ms into a request); 0.3: after.
@pytest.mark.parametrize("wait_s", [0, 0.3])
def test_a_client_that_leaves_before_the_first_byte_aborts_the_upstream_call(gw, client, upstream, wait_s):
    api, _, key = client
    upstream.script([{"delay_ms": 5000}])
    payload = json.dumps({"model": "mock-model", "messages": HELLO}).encode()
    conn = Conn(gw.port, timeout=10)
    conn.send(build_request("POST", "/v1/chat/completions",
                            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, payload,
                            f"127.0.0.1:{gw.port}"))
    poll(lambda: upstream.stats()["requests"] == 1, timeout=5, interval=0.02, what="the upstream call")
    time.sleep(wait_s)
    left = close_abruptly(conn)
    poll(lambda: upstream.stats()["abandoned"] == 1, timeout=1.0, interval=0.02,
         what="the upstream saw its client leave")
    assert time.monotonic() - left < 1.0


# --------------------------------------------------------------------- upstream errors


@pytest.mark.parametrize("step,status,code", [
    ({"status": 500}, 502, "upstream_unavailable"),
    ({"status": 503}, 502, "upstream_unavailable"),
    ({"status": 429, "retry_after": 7}, 429, "rate_limit_exceeded"),
    ({"status": 400}, 400, "invalid_request"),
])
def test_upstream_errors_map_to_statuses_the_sdks_know(gw, client, upstream, step, status, code):
    api, _, key = client
    upstream.script([step])
    r = chat(api, key, {"model": "mock-model", "messages": HELLO, "stream": True})
    err = assert_error_json(r, status, code)
    assert f"mock upstream failure {step['status']}" in err["message"], err  # the upstream's message
    if status == 429:
        assert r.headers.get("retry-after") == "7", r


def test_the_upstream_key_never_reaches_the_client(gw, client, upstream):
    api, _, key = client
    upstream.script([{"status": 401}])
    r = chat(api, key, {"model": "mock-model", "messages": HELLO})
    assert_error_json(r, 500, "internal_error")
    assert "sk-upstream-secret" not in r.body.decode(), r


# --------------------------------------------------------------------------- the demo


def test_the_demo_model_answers_in_openai_format(gw, client):
    api, _, key = client
    r = chat(api, key, {"model": "demo", "messages": HELLO, "max_tokens": 4})
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "demo", body
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 4, body
    r = chat(api, key, {"model": "demo", "messages": HELLO, "stream": True})
    data = events(r)
    assert data[-1] == "[DONE]"
    first = json.loads(data[0])
    assert first["object"] == "chat.completion.chunk" and first["choices"][0]["delta"]["role"] == "assistant"
    r = chat(api, key, {"model": "demo", "messages": HELLO, "n": 2})
    openai_error(r, 400, "invalid_request", "n")


# ------------------------------------------------------------------------- embeddings


def test_embeddings(gw, client, upstream):
    api, _, key = client
    r = post(api, key, "/v1/embeddings", {"model": "demo-embedding", "input": "the same text"})
    assert r.status == 200, r
    body = r.json()
    assert body["object"] == "list" and body["model"] == "demo-embedding", body
    vector = body["data"][0]["embedding"]
    assert len(vector) == 256 and abs(sum(x * x for x in vector) - 1) < 1e-4
    again = post(api, key, "/v1/embeddings", {"model": "demo-embedding", "input": ["the same text", "other"],
                                              "dimensions": 256}).json()
    assert again["data"][0]["embedding"] == vector  # deterministic
    assert [d["index"] for d in again["data"]] == [0, 1]
    # base64: little-endian float32, the same numbers
    b64 = post(api, key, "/v1/embeddings", {"model": "demo-embedding", "input": "the same text",
                                            "encoding_format": "base64", "dimensions": 8}).json()
    raw = base64.b64decode(b64["data"][0]["embedding"])
    floats = struct.unpack("<8f", raw)
    plain = post(api, key, "/v1/embeddings", {"model": "demo-embedding", "input": "the same text",
                                              "dimensions": 8}).json()["data"][0]["embedding"]
    assert floats == pytest.approx(plain, abs=1e-7)
    # through the upstream
    r = post(api, key, "/v1/embeddings", {"model": "mock-embedding", "input": ["a", "b"], "dimensions": 4})
    assert r.status == 200, r
    assert [len(d["embedding"]) for d in r.json()["data"]] == [4, 4]
    r = post(api, key, "/v1/embeddings", {"model": "demo-embedding", "input": "x", "encoding_format": "hex"})
    openai_error(r, 400, "invalid_request", "encoding_format")
    r = post(api, key, "/v1/embeddings", {"model": "demo", "input": "x"})
    openai_error(r, 400, "invalid_request", "model")


# ------------------------------------------------------------- configured model names


@pytest.fixture(scope="module")
def named(module_servers, mock, tmp_path_factory):
    """chatd with a models file: a public name with a slash, served as mock-model upstream."""
    path = tmp_path_factory.mktemp("gw-models") / "models.toml"
    path.write_text(f"""
[[providers]]
name = "mock"
base_url = "{mock.base_url}"
retries = 0
circuit_breaker_failures = 0

[[models]]
name = "acme/large"
provider = "mock"
upstream_model = "mock-model"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
""")
    return module_servers(MODELS_FILE=str(path))


def test_the_upstream_gets_its_own_name_for_the_model(named, upstream):
    api = Api(named.port)
    key = api.new_user().new_key(name="gw")["key"]
    r = chat(api, key, {"model": "acme/large", "messages": HELLO, "stream": True})
    assert r.status == 200, r
    assert last_request(upstream)["model"] == "mock-model"
    assert upstream.stats()["models"] == ["mock-model"]
    for path in ("/v1/models/acme/large", "/v1/models/acme%2Flarge"):
        r = api.call("GET", path, token=key)
        assert r.status == 200 and r.json()["id"] == "acme/large", (path, r)
    openai_error(api.call("GET", "/v1/models/acme/small", token=key), 404, "model_not_found", "model")
