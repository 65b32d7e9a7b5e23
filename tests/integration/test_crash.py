"""A chatd killed with SIGKILL in the middle of an answer loses nothing it had stored:
after a restart on the same database, the answer is there as `incomplete` with what had
arrived by its last flush, the rest of the conversation is intact, and the database
passes its integrity check.
"""

import sqlite3
import time

from accounts_client import Api
from chatd_testing import PG_URL, psql
from test_chat_turn import StreamingClient, branch, conversation


def test_kill_9_mid_stream_leaves_the_answer_incomplete(make_server):
    server = make_server()
    api = Api(server.port)
    user = api.new_user()
    cid = conversation(api, user, title="before the crash")
    client = StreamingClient(server.port, user.access, cid, {"content": "a long answer please", "model": "demo-slow"})
    mid = client.assistant_id()
    time.sleep(1.5)  # past the first flush (every second)
    restarted = make_server.kill_and_restart(server)
    client.close()
    api = Api(restarted.port)
    user.api = api
    messages = branch(api, user, cid)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    answer = messages[1]
    assert answer["id"] == mid and answer["status"] == "incomplete", answer
    assert answer["content"], "what had been flushed before the kill is kept"
    r = api.call("GET", f"/conversations/{cid}", token=user.access)
    assert r.status == 200 and r.json()["title"] == "before the crash"

    if PG_URL:
        database = server.env["DATABASE_URL"]
        assert psql(database, "SELECT count(*) FROM messages WHERE status = 'streaming'") == [["0"]]
    else:
        path = server.data_dir / "chatd.db"
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert db.execute("SELECT count(*) FROM messages WHERE status = 'streaming'").fetchone() == (0,)
    # and the conversation goes on
    r = api.call("POST", f"/conversations/{cid}/messages", {"content": "still there?", "stream": False},
                 token=user.access, timeout=30)
    assert r.status == 200 and r.json()["status"] == "complete", r
