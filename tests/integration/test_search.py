"""Search over the caller's messages and conversation titles (docs/api.md "Search"):
GET /search?q=&limit=&cursor= — ranked hits with HTML-safe snippets that mark the matches,
keyset pages, per-user isolation, deleted text gone, and every bad query a 400.

Messages are made with chat turns on the built-in `demo` model. With "max_tokens": 2 its
answer is only "You said:", so the user's words are not echoed into a second hit.

The tests share `accounts_server` and create their own users.
"""

import re
import urllib.parse

from accounts_client import assert_invalid, assert_unauthenticated

HIT_FIELDS = {"type", "conversation_id", "conversation_title", "message_id", "role", "snippet", "score",
              "created_at"}


# ------------------------------------------------------------------------ helpers


def conversation(api, user, title="untitled") -> str:
    # Titled by default: an untitled one gets a title from its first message in the
    # background (docs/api.md), which would add title hits at a moment tests can't know.
    r = api.call("POST", "/conversations", {"title": title}, token=user.access)
    assert r.status == 201, r
    return r.json()["id"]


def say(api, user, cid, content, max_tokens=2) -> dict:
    """One turn; returns the stored user message."""
    r = api.call("POST", f"/conversations/{cid}/messages",
                 {"content": content, "stream": False, "max_tokens": max_tokens}, token=user.access)
    assert r.status == 200, r
    r = api.call("GET", f"/conversations/{cid}/messages?limit=100", token=user.access)
    assert r.status == 200, r
    users = [m for m in r.json()["data"] if m["role"] == "user"]
    return users[-1]


def search(api, user, q=None, **params):
    query = {} if q is None else {"q": q}
    query.update(params)
    return api.call("GET", "/search?" + urllib.parse.urlencode(query), token=user.access)


def hits(api, user, q, **params) -> list[dict]:
    r = search(api, user, q, **params)
    assert r.status == 200, r
    body = r.json()
    assert set(body) == {"data", "next_cursor"}, body
    for hit in body["data"]:
        assert set(hit) == HIT_FIELDS, hit
    return body["data"]


def all_pages(api, user, q, limit) -> list[dict]:
    out, cursor = [], None
    while True:
        params = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = search(api, user, q, **params)
        assert r.status == 200, r
        body = r.json()
        assert len(body["data"]) <= limit
        out += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return out
        assert body["data"], "a page with a next_cursor must not be empty"


def tags(snippet: str) -> set[str]:
    return set(re.findall(r"<[^>]*>", snippet))


# ------------------------------------------------------------------------ tests


def test_finds_a_word_of_a_message_and_of_a_title(api):
    user = api.new_user()
    titled = conversation(api, user, "Quarterly xylophone planning")
    other = conversation(api, user, "misc")
    message = say(api, user, other, "The okapi lives in the forest")

    found = hits(api, user, "okapi")
    assert len(found) == 1, found
    hit = found[0]
    assert hit["type"] == "message"
    assert hit["conversation_id"] == other and hit["conversation_title"] == "misc"
    assert hit["message_id"] == message["id"] and hit["role"] == "user"
    assert hit["created_at"] == message["created_at"]
    assert hit["snippet"] == "The <mark>okapi</mark> lives in the forest", hit
    assert isinstance(hit["score"], float) and hit["score"] > 0

    found = hits(api, user, "XYLOPHONE")
    assert len(found) == 1, found
    hit = found[0]
    assert hit["type"] == "title" and hit["message_id"] is None and hit["role"] is None
    assert hit["conversation_id"] == titled
    assert hit["snippet"] == "Quarterly <mark>xylophone</mark> planning", hit


def test_words_are_stemmed_and_every_term_must_match(api):
    user = api.new_user()
    cid = conversation(api, user, "animals")
    message = say(api, user, cid, "The okapi lives in the forest")
    assert [h["message_id"] for h in hits(api, user, "forests")] == [message["id"]]
    assert [h["message_id"] for h in hits(api, user, "okapi forest")] == [message["id"]]
    assert hits(api, user, "okapi giraffe") == []
    # A phrase's words must be adjacent, in order.
    assert [h["message_id"] for h in hits(api, user, '"okapi lives"')] == [message["id"]]
    assert hits(api, user, '"lives okapi"') == []


def test_assistant_answers_are_found_too(api):
    user = api.new_user()
    cid = conversation(api, user)
    say(api, user, cid, "Tell me about pangolins", max_tokens=50)  # the demo quotes the prompt
    found = hits(api, user, "pangolins")
    assert sorted(h["role"] for h in found) == ["assistant", "user"], found
    assert all("<mark>pangolins</mark>" in h["snippet"] for h in found), found


def test_better_matches_rank_first(api):
    user = api.new_user()
    cid = conversation(api, user)
    sparse = say(api, user, cid, "one capybara among many other words in a much longer sentence about rivers "
                                 "and the animals that live along their banks in the south")
    dense = say(api, user, cid, "capybara capybara capybara")
    found = hits(api, user, "capybara")
    assert [h["message_id"] for h in found] == [dense["id"], sparse["id"]], found
    assert found[0]["score"] > found[1]["score"]


def test_snippets_are_html_safe(api):
    user = api.new_user()
    cid = conversation(api, user, "<b>bold</b> & quokka")
    say(api, user, cid, "<script>alert('quokka')</script> & \"quoted\" <img src=x onerror=alert(1)>")
    found = hits(api, user, "quokka")
    assert len(found) == 2, found
    for hit in found:
        assert tags(hit["snippet"]) == {"<mark>", "</mark>"}, hit
        assert "<mark>quokka</mark>" in hit["snippet"], hit
    message = next(h for h in found if h["type"] == "message")
    assert message["snippet"] == ("&lt;script&gt;alert(&#39;<mark>quokka</mark>&#39;)&lt;/script&gt; &amp; "
                                  "&quot;quoted&quot; &lt;img src=x onerror=alert(1)&gt;"), message
    title = next(h for h in found if h["type"] == "title")
    assert title["conversation_title"] == "<b>bold</b> & quokka"  # the title itself is data, as sent
    assert title["snippet"] == "&lt;b&gt;bold&lt;/b&gt; &amp; <mark>quokka</mark>", title


def test_a_long_message_gets_a_short_snippet_around_the_match(api):
    user = api.new_user()
    cid = conversation(api, user)
    filler = " ".join(f"word{i}" for i in range(300))
    say(api, user, cid, f"{filler} narwhal {filler}")
    [hit] = hits(api, user, "narwhal")
    assert "<mark>narwhal</mark>" in hit["snippet"]
    assert len(hit["snippet"]) < 600, hit["snippet"]


def test_pages_cover_every_hit_once_even_while_the_index_changes(api):
    user = api.new_user()
    cid = conversation(api, user)
    # Equal texts score equally, so the order is by id: a fixed order to page through.
    made = [say(api, user, cid, f"walrus note {n}")["id"] for n in range(7)]
    full = hits(api, user, "walrus", limit=100)
    assert sorted(h["message_id"] for h in full) == sorted(made)

    first = search(api, user, "walrus", limit=3).json()
    assert len(first["data"]) == 3 and first["next_cursor"]
    # New text that matches (and shifts every bm25 score) between pages.
    other = conversation(api, user)
    say(api, user, other, "walrus walrus and more walrus")
    rest, cursor = [], first["next_cursor"]
    while cursor:
        body = search(api, user, "walrus", limit=3, cursor=cursor).json()
        rest += body["data"]
        cursor = body["next_cursor"]
    seen = [h["message_id"] for h in first["data"] + rest if h["conversation_id"] == cid]
    assert sorted(seen) == sorted(made), (seen, made)  # each once: no repeats, no gaps
    assert [h["message_id"] for h in full] == seen


def test_pages_follow_the_ranking(api):
    user = api.new_user()
    cid = conversation(api, user, "lemur lemur")
    for text in ("lemur", "lemur lemur lemur", "lemur and friends", "lemur lemur", "the lemur sleeps"):
        say(api, user, cid, text)
    full = hits(api, user, "lemur", limit=100)
    assert len(full) == 6
    scores = [h["score"] for h in full]
    assert scores == sorted(scores, reverse=True)
    for limit in (1, 2, 4):
        assert all_pages(api, user, "lemur", limit) == full


def test_other_users_text_is_never_found(api):
    alice, bob = api.new_user(), api.new_user()
    bobs = conversation(api, bob, "secret tapir plans")
    say(api, bob, bobs, "the tapir is bob's")
    assert hits(api, alice, "tapir") == []
    assert len(hits(api, bob, "tapir")) == 2
    # Alice's own text is found; Bob's still is not.
    mine = conversation(api, alice)
    say(api, alice, mine, "my tapir")
    found = hits(api, alice, "tapir")
    assert [h["conversation_id"] for h in found] == [mine]


def test_deleted_and_renamed_text_leaves_the_index(api):
    user = api.new_user()
    gone = conversation(api, user, "ibex expedition")
    say(api, user, gone, "ibex climbing notes")
    kept = conversation(api, user, "old mongoose title")
    assert len(hits(api, user, "ibex")) == 2
    r = api.call("DELETE", f"/conversations/{gone}", token=user.access)
    assert r.status == 204, r
    assert hits(api, user, "ibex") == []

    r = api.call("PATCH", f"/conversations/{kept}", {"title": "new meerkat title"}, token=user.access)
    assert r.status == 200, r
    assert hits(api, user, "mongoose") == []
    [hit] = hits(api, user, "meerkat")
    assert hit["type"] == "title" and hit["conversation_id"] == kept


def test_query_syntax_is_plain_text(api):
    user = api.new_user()
    cid = conversation(api, user)
    message = say(api, user, cid, "okapi near the river, not far")
    # Operators of FTS5 and tsquery are words here: nothing fails to parse.
    for q in ('okapi AND NOT (giraffe', 'NEAR(okapi river)', '"unbalanced okapi', 'body:okapi', 'okapi*',
              '-okapi', '^okapi', 'okapi OR', "okapi's", "o'kapi", 'okapi & | ! <->', '{okapi}', '"" okapi'):
        r = search(api, user, q)
        assert r.status == 200, (q, r)
    assert [h["message_id"] for h in hits(api, user, 'okapi*')] == [message["id"]]
    assert [h["message_id"] for h in hits(api, user, '"unbalanced okapi')] == []
    assert [h["message_id"] for h in hits(api, user, '(okapi) river!')] == [message["id"]]


def test_bad_queries_are_400(api):
    user = api.new_user()
    for q in (None, "", "   ", '""', "!!!", "* - ^", "x" * 201, " ".join(["w"] * 17), "okapi\x00", "tab\x01"):
        assert_invalid(search(api, user, q), "q")
    # Not UTF-8.
    r = api.call("GET", "/search?q=%FF%FEokapi", token=user.access)
    assert_invalid(r, "q")
    assert_invalid(search(api, user, "okapi", limit=0), "limit")
    assert_invalid(search(api, user, "okapi", limit=101), "limit")
    for cursor in ("not-a-cursor", "bm90LWEtY3Vyc29y", "MC41fG5vdC1hLXV1aWQ"):
        assert_invalid(search(api, user, "okapi", cursor=cursor), "cursor")
    # Limits that hold: 200 characters, 16 terms.
    assert search(api, user, "é" * 200).status == 200
    assert search(api, user, " ".join(["w"] * 16)).status == 200


def test_search_needs_authentication(api):
    assert_unauthenticated(api.call("GET", "/search?q=okapi"))
