"""CORS and Host allow-listing."""

import pytest

from chatd_testing import PG_URL, ServerFactory, assert_error_json, get, request

APP = "https://app.example.com"


@pytest.fixture(scope="module")
def cors_server(binary, tmp_path_factory):
    factory = ServerFactory(binary, tmp_path_factory, PG_URL)
    srv = factory(CORS_ORIGINS=APP)
    yield srv
    factory.stop_all()


def test_allowed_origin_is_echoed(cors_server):
    r = get(cors_server.port, "/health", headers={"Origin": APP})
    assert r.status == 200, r
    assert r.headers.get_all("access-control-allow-origin") == [APP], r
    assert "origin" in r.headers.tokens("vary"), r


def test_other_origin_gets_no_cors_headers(cors_server):
    r = get(cors_server.port, "/health", headers={"Origin": "https://evil.example"})
    assert r.status == 200, r
    assert "access-control-allow-origin" not in r.headers, r


def test_no_origin_no_cors_headers(cors_server):
    r = get(cors_server.port, "/health")
    assert r.status == 200
    assert "access-control-allow-origin" not in r.headers, r


def test_preflight_from_allowed_origin(cors_server):
    r = request(cors_server.port, "OPTIONS", "/api/v1/anything", headers={
        "Origin": APP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    })
    assert r.status == 204, r
    assert r.headers.get_all("access-control-allow-origin") == [APP], r
    assert "post" in r.headers.tokens("access-control-allow-methods"), r
    allowed = r.headers.tokens("access-control-allow-headers")
    assert allowed == ["*"] or {"authorization", "content-type"} <= set(allowed), r
    max_age = r.headers.get("access-control-max-age") or ""
    assert max_age.isdigit() and int(max_age) > 0, r
    assert "origin" in r.headers.tokens("vary"), r
    assert r.body == b""


def test_preflight_from_disallowed_origin_is_403(cors_server):
    r = request(cors_server.port, "OPTIONS", "/api/v1/anything", headers={
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
    })
    assert_error_json(r, 403)
    assert "access-control-allow-origin" not in r.headers, r


def test_cors_headers_on_error_responses(cors_server):
    r = get(cors_server.port, "/api/v1/nothing-here", headers={"Origin": APP})
    assert_error_json(r, 404)
    assert r.headers.get("access-control-allow-origin") == APP, r


def test_allowed_hosts(make_server):
    srv = make_server(ALLOWED_HOSTS="localhost,127.0.0.1")
    r = get(srv.port, "/health", host=f"127.0.0.1:{srv.port}")
    assert r.status == 200, r
    r = get(srv.port, "/health", host="localhost")
    assert r.status == 200, r
    r = get(srv.port, "/health", host="evil.example")
    assert_error_json(r, 400, "invalid_request")
    r = get(srv.port, "/health", host=f"evil.example:{srv.port}")
    assert_error_json(r, 400, "invalid_request")
    r = get(srv.port, "/health", host="localhost.evil.example")
    assert_error_json(r, 400, "invalid_request")
