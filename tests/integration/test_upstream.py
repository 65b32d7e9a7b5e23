"""Chat turns against a real OpenAI-compatible upstream: bench/mock_upstream, configured
through OPENAI_BASE_URL + OPENAI_API_KEY (models discovered from its /models) and through
a MODELS_FILE (fallbacks, a circuit breaker). The mock is scripted per test: failures,
Retry-After, stalls, slow streams; its /_mock/stats tells what it saw.
"""

import json
import subprocess
import textwrap
import time

import pytest

from accounts_client import Api
from chatd_testing import get, poll, server_env
from test_chat_turn import StreamingClient, branch, conversation, parse_sse, send, wait_for_status


@pytest.fixture(scope="module")
def env_server(module_servers, mock):
    """chatd with only OPENAI_BASE_URL + OPENAI_API_KEY: it offers what the mock lists."""
    return module_servers(OPENAI_API_KEY="sk-test-not-real", OPENAI_BASE_URL=mock.base_url,
                          LLM_MODEL="mock-model", LLM_RETRIES="2", LLM_RETRY_BACKOFF="50ms",
                          LLM_IDLE_TIMEOUT="800ms", LLM_CIRCUIT_BREAKER_FAILURES="0")


@pytest.fixture(scope="module")
def file_server(module_servers, mock, tmp_path_factory):
    """chatd with a models file: a primary model falling back to a backup, and a model on
    an upstream whose breaker opens after 3 failures for 1.5 s."""
    path = tmp_path_factory.mktemp("models") / "models.toml"
    path.write_text(textwrap.dedent(f"""\
        default_model = "primary"

        [[providers]]
        name = "mock"
        type = "openai-compatible"
        base_url = "{mock.base_url}"
        api_key_env = "MOCK_KEY"
        retries = 1
        circuit_breaker_failures = 0

        [[providers]]
        name = "mock-fragile"
        base_url = "{mock.base_url}"
        retries = 0
        circuit_breaker_failures = 3
        circuit_breaker_cooldown = "1500ms"

        [[models]]
        name = "primary"
        provider = "mock"
        upstream_model = "mock-model"
        context_window = 32000
        input_price_per_1m = 0.5
        output_price_per_1m = 1.5
        fallbacks = ["backup"]

        [[models]]
        name = "backup"
        provider = "mock"
        upstream_model = "mock-backup"

        [[models]]
        name = "fragile"
        provider = "mock-fragile"
        upstream_model = "mock-model"
        """))
    return module_servers(MODELS_FILE=str(path), MOCK_KEY="sk-from-env", LLM_RETRY_BACKOFF="50ms")


def turn(srv, body, timeout=30):
    """A new user and conversation, one streamed turn: (api, user, cid, events, seconds)."""
    api = Api(srv.port)
    user = api.new_user()
    cid = conversation(api, user, title="titled, so no title request reaches the mock")
    started = time.monotonic()
    r = send(api, user, cid, body, timeout=timeout)
    elapsed = time.monotonic() - started
    assert r.status == 200, r
    return api, user, cid, parse_sse(r.body.decode()), elapsed


def answer(events) -> str:
    return "".join(e["data"]["content"] for e in events if e["event"] == "delta")


# ------------------------------------------------------------------ configured by env


def test_models_the_upstream_lists_are_offered(env_server):
    api = Api(env_server.port)
    user = api.new_user()
    r = api.call("GET", "/models", token=user.access)
    assert r.status == 200, r
    models = {m["id"]: m for m in r.json()["data"]}
    assert "mock-model" in models and models["mock-model"]["default"], models
    assert models["mock-model"]["owned_by"] == "openai"
    assert "demo" in models  # the built-in models stay
    found = [line for line in env_server.json_logs() if line.get("msg") == "models discovered"]
    assert found and "mock-model" in found[0]["models"], found


def test_a_streamed_turn_from_the_upstream(env_server, upstream):
    api, user, cid, events, _ = turn(env_server, {"content": "hello upstream"})
    kinds = [e["event"] for e in events]
    assert kinds == ["message.created"] + ["delta"] * 5 + ["message.completed"], kinds
    assert answer(events) == "tok0 tok1 tok2 tok3 tok4 "
    completed = events[-1]["data"]
    assert completed["finish_reason"] == "stop"
    assert completed["usage"]["prompt_tokens"] == 12 and completed["usage"]["completion_tokens"] == 5
    stored = branch(api, user, cid)[-1]
    assert stored["status"] == "complete" and stored["content"] == answer(events)
    assert stored["model"] == "mock-model"
    assert upstream.stats()["models"] == ["mock-model"]


def test_a_500_is_retried_and_answered_once(env_server, upstream):
    upstream.script([{"status": 500}])
    api, user, cid, events, _ = turn(env_server, {"content": "flaky"})
    kinds = [e["event"] for e in events]
    assert kinds.count("message.created") == 1 and kinds[-1] == "message.completed", kinds
    assert answer(events) == "tok0 tok1 tok2 tok3 tok4 "
    assert upstream.stats()["requests"] == 2
    messages = branch(api, user, cid)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[-1]["status"] == "complete"


def test_retry_after_is_honoured(env_server, upstream):
    upstream.script([{"status": 429, "retry_after": 1}])
    _, _, _, events, elapsed = turn(env_server, {"content": "slow down"})
    assert events[-1]["event"] == "message.completed", events
    assert elapsed >= 1.0, elapsed  # waited as asked (the backoff alone is 50 ms)
    assert elapsed < 5.0, elapsed
    assert upstream.stats()["requests"] == 2


def test_retries_give_up_with_an_error_event(env_server, upstream):
    upstream.script([{"status": 503}] * 3)  # 1 + LLM_RETRIES
    api, user, cid, events, _ = turn(env_server, {"content": "down"})
    assert [e["event"] for e in events] == ["message.created", "error"], events
    assert events[1]["data"]["error"]["code"] == "upstream_unavailable"
    assert upstream.stats()["requests"] == 3
    stored = branch(api, user, cid)[-1]
    assert stored["status"] == "error" and stored["error"], stored


def test_an_upstream_rejection_is_not_retried(env_server, upstream):
    upstream.script([{"status": 400}])
    _, _, _, events, _ = turn(env_server, {"content": "bad"})
    assert events[-1]["event"] == "error", events
    assert events[-1]["data"]["error"]["code"] == "invalid_request"
    assert "mock upstream failure 400" in events[-1]["data"]["error"]["message"]
    assert upstream.stats()["requests"] == 1


@pytest.mark.slow
def test_a_stalled_upstream_hits_the_idle_timeout(env_server, upstream):
    # The mock sends 3 tokens, then only keep-alive comments: they do not count as progress.
    upstream.script([{"stall_after": 3}])
    api, user, cid, events, elapsed = turn(env_server, {"content": "stall"})
    assert [e["event"] for e in events].count("delta") == 3, events
    assert events[-1]["event"] == "error", events
    assert events[-1]["data"]["error"]["code"] == "upstream_timeout"
    assert elapsed < 5, elapsed
    stored = branch(api, user, cid)[-1]
    assert stored["status"] == "error" and stored["content"] == "tok0 tok1 tok2 ", stored
    poll(lambda: upstream.stats()["aborted_streams"] == 1, 3, what="the mock saw the stream aborted")


def test_a_client_leaving_with_on_disconnect_cancel_aborts_the_upstream(env_server, upstream):
    upstream.script([{"chunks": 400, "interval_ms": 50}])
    api = Api(env_server.port)
    user = api.new_user()
    cid = conversation(api, user, title="titled, so no title request reaches the mock")
    client = StreamingClient(env_server.port, user.access, cid, {"content": "long", "on_disconnect": "cancel"})
    mid = client.assistant_id()
    assert upstream.stats()["active_streams"] == 1
    client.close()
    left = time.monotonic()
    poll(lambda: upstream.stats()["aborted_streams"] == 1, 5, interval=0.02, what="the upstream stream aborted")
    assert time.monotonic() - left < 1.0
    stored = wait_for_status(api, user, cid, mid, "cancelled", deadline_s=5)
    assert stored["finish_reason"] == "cancelled" and stored["content"].startswith("tok0 ")
    assert upstream.stats()["completed_streams"] == 0


def test_a_turn_over_a_websocket_from_the_upstream(env_server, upstream):
    from test_websocket import connect, ready, turn_events

    api = Api(env_server.port)
    user = api.new_user()
    cid = conversation(api, user, title="titled, so no title request reaches the mock")
    upstream.script([{"chunks": 6}])
    ws = connect(env_server.port, token=user.access)
    try:
        ready(ws)
        ws.send(json.dumps({"type": "chat", "id": "w", "conversation_id": cid, "content": "hi"}))
        events = turn_events(ws, "w")
    finally:
        ws.close()
    assert [e["type"] for e in events] == ["message.created"] + ["delta"] * 6 + ["message.completed"]
    assert "".join(e.get("content", "") for e in events) == "tok0 tok1 tok2 tok3 tok4 tok5 "
    assert wait_for_status(api, user, cid, events[0]["assistant_message_id"], "complete")["content"].startswith("tok0")


def test_a_dropped_client_resumes_an_upstream_answer(env_server, upstream):
    from test_resume import events_in, resume

    upstream.script([{"chunks": 30, "interval_ms": 30}])
    api = Api(env_server.port)
    user, other = api.new_user(), api.new_user()
    cid = conversation(api, user, title="titled, so no title request reaches the mock")
    client = StreamingClient(env_server.port, user.access, cid, {"content": "go on without me"})
    mid = client.assistant_id()
    while len(events_in(client.received)) < 4:
        chunk = client.sock.recv(4096)
        assert chunk
        client.received += chunk
    before = events_in(client.received)
    client.close()  # by default the answer goes on
    status, _, body = resume(env_server.port, other.access, cid, mid, last_event_id=before[-1]["id"])
    assert status == 404, "someone else's stream looks missing"
    status, _, body = resume(env_server.port, user.access, cid, mid, last_event_id=before[-1]["id"])
    assert status == 200, body
    after = parse_sse(body)
    assert [e["id"] for e in after] == list(range(before[-1]["id"] + 1, before[-1]["id"] + 1 + len(after)))
    text = "".join(e["data"].get("content", "") for e in before + after)
    assert text == "".join(f"tok{i} " for i in range(30))
    assert wait_for_status(api, user, cid, mid, "complete")["content"] == text
    assert upstream.stats()["completed_streams"] == 1


def test_kill_9_mid_upstream_answer(make_server, upstream):
    server = make_server(OPENAI_API_KEY="sk-test-not-real", OPENAI_BASE_URL=upstream.base_url, LLM_MODEL="mock-model")
    upstream.script([{"chunks": 200, "interval_ms": 20}])
    api = Api(server.port)
    user = api.new_user()
    cid = conversation(api, user, title="titled, so no title request reaches the mock")
    client = StreamingClient(server.port, user.access, cid, {"content": "crash in the middle"})
    mid = client.assistant_id()
    time.sleep(1.5)  # past the first flush
    restarted = make_server.kill_and_restart(server)
    client.close()
    api = Api(restarted.port)
    user.api = api
    stored = [m for m in branch(api, user, cid) if m["id"] == mid][0]
    assert stored["status"] == "incomplete" and stored["content"].startswith("tok0 tok1 "), stored

def test_upstream_calls_are_in_the_metrics(env_server, upstream):
    def sample(text, name, **labels):
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in text.splitlines():
            if line.startswith(f"{name}{{{want}}} "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = get(env_server.port, "/metrics").body.decode()
    upstream.script([{"status": 500}])
    _, _, _, events, _ = turn(env_server, {"content": "count me"})
    assert events[-1]["event"] == "message.completed", events
    after = get(env_server.port, "/metrics").body.decode()
    for name, labels, delta in [
        ("llm_upstream_calls_total", {"provider": "openai", "outcome": "ok"}, 1),
        ("llm_upstream_calls_total", {"provider": "openai", "outcome": "upstream_unavailable"}, 1),
        ("llm_upstream_retries_total", {"provider": "openai"}, 1),
        ("llm_upstream_time_to_first_token_seconds_count", {"provider": "openai"}, 1),
        ("llm_upstream_tokens_total", {"provider": "openai", "type": "prompt"}, 12),
        ("llm_upstream_tokens_total", {"provider": "openai", "type": "completion"}, 5),
        # the chat turn's own view: one request, whatever the retries
        ("llm_requests_total", {"provider": "openai", "model": "mock-model", "status": "ok"}, 1),
    ]:
        assert sample(after, name, **labels) - sample(before, name, **labels) == delta, (name, labels, after)


# -------------------------------------------------------------- configured by a file


def test_models_file_models_are_offered(file_server, upstream):
    api = Api(file_server.port)
    user = api.new_user()
    models = {m["id"]: m for m in api.call("GET", "/models", token=user.access).json()["data"]}
    assert {"primary", "backup", "fragile"} <= set(models), models
    assert models["primary"]["default"] and models["primary"]["context_window"] == 32000
    _, _, _, events, _ = turn(file_server, {"content": "hi"})
    assert events[-1]["event"] == "message.completed", events
    assert upstream.stats()["models"] == ["mock-model"]


def test_a_failing_primary_falls_back_to_its_backup(file_server, upstream):
    upstream.script([{"status": 500}, {"status": 502}])  # both attempts at the primary (retries = 1)
    api, user, cid, events, _ = turn(file_server, {"content": "fall back", "model": "primary"})
    assert events[-1]["event"] == "message.completed", events
    assert answer(events) == "tok0 tok1 tok2 tok3 tok4 "
    assert upstream.stats()["models"] == ["mock-model", "mock-model", "mock-backup"]
    assert branch(api, user, cid)[-1]["model"] == "primary"


@pytest.mark.slow
def test_the_circuit_breaker_opens_then_probes(file_server, upstream):
    upstream.script([{"status": 500}] * 3)
    for _ in range(3):
        _, _, _, events, _ = turn(file_server, {"content": "x", "model": "fragile"})
        assert events[-1]["event"] == "error", events
    assert upstream.stats()["requests"] == 3
    # Open: refused at once, the upstream is not called.
    _, _, _, events, elapsed = turn(file_server, {"content": "x", "model": "fragile"})
    assert events[-1]["event"] == "error", events
    assert "circuit breaker open" in events[-1]["data"]["error"]["message"]
    assert upstream.stats()["requests"] == 3
    # After the cool-down one probe goes through; it succeeds and closes the breaker.
    time.sleep(1.6)
    for _ in range(2):
        _, _, _, events, _ = turn(file_server, {"content": "x", "model": "fragile"})
        assert events[-1]["event"] == "message.completed", events
    assert upstream.stats()["requests"] == 5


# ---------------------------------------------------------------- bad configuration


@pytest.mark.parametrize("content, complaint", [
    ('[[models]]\nname = "m"\nprovider = "nowhere"\n', "names provider 'nowhere'"),
    ('[[providers]]\nname = "p"\nbase_url = "ftp://x"\n', "base_url"),
    ('[[providers]]\nname = "p"\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "UNSET_KEY"\n', "UNSET_KEY"),
    ('[[providers]\n', "line 1"),
])
def test_a_bad_models_file_stops_chatd_at_start(binary, tmp_path, content, complaint):
    path = tmp_path / "models.toml"
    path.write_text(content)
    env = server_env(tmp_path / "data", None, {"MODELS_FILE": str(path)})
    out = subprocess.run([str(binary), "serve"], env=env, capture_output=True, text=True, timeout=20,
                         stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert out.returncode == 2, out
    assert "MODELS_FILE" in out.stderr and complaint in out.stderr, out.stderr


def test_an_upstream_down_at_start_does_not_keep_chatd_down(make_server):
    import socket
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = make_server(OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", LLM_MODEL="gpt-x", LLM_RETRIES="0")
    assert any(line.get("msg", "").startswith("cannot list the upstream's models") for line in srv.json_logs())
    _, _, _, events, _ = turn(srv, {"content": "anyone there?"})
    assert events[-1]["event"] == "error", events
    assert events[-1]["data"]["error"]["code"] == "upstream_unavailable"
    assert "cannot connect" in events[-1]["data"]["error"]["message"]


def test_the_model_titles_an_untitled_conversation_after_its_first_answer(env_server, upstream):
    api = Api(env_server.port)
    user = api.new_user()
    cid = conversation(api, user)
    upstream.script([{"chunks": 3}, {"chunks": 4}])  # the answer, then the title
    r = send(api, user, cid, {"content": "name this chat"}, timeout=30)
    assert r.status == 200, r

    def titled():
        title = api.call("GET", f"/conversations/{cid}", token=user.access).json()["title"]
        return title or None

    assert poll(titled, timeout=10, what="a title") == "tok0 tok1 tok2 tok3"
    assert upstream.stats()["requests"] == 2, "one request for the answer, one for the title"
