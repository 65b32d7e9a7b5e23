"""Helpers for the accounts tests: a small JSON client for chatd's /api/v1, users,
JWT forging (HS256 with the test SECRET_KEY) and assertions on auth errors.

Stdlib only. Every request is one fresh connection (chatd_testing.request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from chatd_testing import TEST_SECRET_KEY, Response, assert_error_json, request

API = "/api/v1"
USER_FIELDS = {"id", "email", "name", "role", "is_active", "created_at", "updated_at",
               "last_login_at"}
KEY_FIELDS = {"id", "name", "prefix", "scopes", "expires_at", "last_used_at", "created_at",
              "allowed_models", "rpm_limit", "tpm_limit", "budget", "response_cache"}
TOKEN_FIELDS = {"access_token", "refresh_token", "token_type", "expires_in"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# Requests that may hit the slowed-down failed-login path can take up to 4 s.
TIMEOUT = 15.0

ADMIN_EMAIL = "root-admin@example.com"
ADMIN_PASSWORD = "Adm1n-Bootstrap-Pa55word!"


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def new_email(prefix: str = "user") -> str:
    return f"{unique(prefix)}@example.com"


def new_password() -> str:
    """A password no list of common passwords holds."""
    return f"Tst-{uuid.uuid4().hex[:14]}-9!"


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """RFC 3339 UTC ("...Z" or "+00:00", optional fraction) -> aware datetime."""
    assert isinstance(value, str), value
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", value)
    assert m, f"not an RFC 3339 timestamp: {value!r}"
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + tz)


def future(seconds: float) -> str:
    """A whole-second RFC 3339 time between `seconds` and `seconds`+1 from now."""
    now = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
    return rfc3339(now + timedelta(seconds=seconds))


# -------------------------------------------------------------------------- client


class Api:
    """chatd's app API on one port."""

    def __init__(self, port: int):
        self.port = port

    def call(self, method: str, path: str, body=None, *, token: str | None = None,
             api_key: str | None = None, headers: dict[str, str] | None = None,
             form: dict[str, str] | None = None, raw: bytes | None = None,
             timeout: float = TIMEOUT) -> Response:
        """path is relative to /api/v1 unless it starts with "/api" or "/v1"."""
        if not path.startswith(("/api/", "/v1/")):
            path = API + path
        hdrs: dict[str, str] = {}
        data = b""
        if form is not None:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
            data = urllib.parse.urlencode(form).encode()
        elif raw is not None:
            data = raw
        elif body is not None:
            hdrs["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if api_key is not None:
            hdrs["x-api-key"] = api_key
        hdrs.update(headers or {})
        if method in ("POST", "PATCH", "PUT") and not data:
            hdrs.setdefault("Content-Length", "0")
        return request(self.port, method, path, headers=hdrs, body=data, timeout=timeout)

    # -- auth
    def register(self, email: str, password: str, name: str | None = None, **kw) -> Response:
        body = {"email": email, "password": password}
        if name is not None:
            body["name"] = name
        return self.call("POST", "/auth/register", body, **kw)

    def login(self, email: str, password: str, **kw) -> Response:
        return self.call("POST", "/auth/login", {"email": email, "password": password}, **kw)

    def login_form(self, username: str, password: str, **kw) -> Response:
        return self.call("POST", "/auth/login", form={"username": username, "password": password},
                         **kw)

    def refresh(self, refresh_token: str, **kw) -> Response:
        return self.call("POST", "/auth/refresh", {"refresh_token": refresh_token}, **kw)

    def logout(self, refresh_token: str, **kw) -> Response:
        return self.call("POST", "/auth/logout", {"refresh_token": refresh_token}, **kw)

    # -- me
    def me(self, token: str | None = None, **kw) -> Response:
        return self.call("GET", "/users/me", token=token, **kw)

    def patch_me(self, token: str, body: dict, **kw) -> Response:
        return self.call("PATCH", "/users/me", body, token=token, **kw)

    def change_password(self, token: str, current: str, new: str, **kw) -> Response:
        return self.call("POST", "/users/me/password",
                         {"current_password": current, "new_password": new}, token=token, **kw)

    def delete_me(self, token: str, **kw) -> Response:
        return self.call("DELETE", "/users/me", token=token, **kw)

    # -- keys
    def create_key(self, token: str, name: str = "test key", scopes: list[str] | None = None,
                   expires_at: str | None = None, limits: dict | None = None, **kw) -> Response:
        """`limits`: allowed_models, rpm_limit, tpm_limit and/or budget, sent as given."""
        body: dict = {"name": name}
        if scopes is not None:
            body["scopes"] = scopes
        if expires_at is not None:
            body["expires_at"] = expires_at
        body.update(limits or {})
        return self.call("POST", "/api-keys", body, token=token, **kw)

    def patch_key(self, token: str, key_id: str, body: dict, **kw) -> Response:
        return self.call("PATCH", f"/api-keys/{key_id}", body, token=token, **kw)

    def admin_patch_key(self, token: str, key_id: str, body: dict, **kw) -> Response:
        return self.call("PATCH", f"/admin/api-keys/{key_id}", body, token=token, **kw)

    # -- usage
    def usage(self, token: str, admin: bool = False, **params) -> Response:
        qs = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        path = "/admin/usage" if admin else "/usage"
        return self.call("GET", f"{path}{'?' + qs if qs else ''}", token=token)

    def list_keys(self, token: str, **kw) -> Response:
        return self.call("GET", "/api-keys", token=token, **kw)

    def delete_key(self, token: str, key_id: str, **kw) -> Response:
        return self.call("DELETE", f"/api-keys/{key_id}", token=token, **kw)

    # -- admin
    def admin_users(self, token: str, q: str | None = None, limit: int | None = None,
                    cursor: str | None = None, **kw) -> Response:
        params = {k: v for k, v in (("q", q), ("limit", limit), ("cursor", cursor))
                  if v is not None}
        qs = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        return self.call("GET", f"/admin/users{'?' + qs if qs else ''}", token=token, **kw)

    def admin_patch(self, token: str, user_id: str, body: dict, **kw) -> Response:
        return self.call("PATCH", f"/admin/users/{user_id}", body, token=token, **kw)

    # -- composite
    def tokens(self, email: str, password: str) -> dict:
        r = self.login(email, password)
        assert r.status == 200, r
        return check_tokens(r)

    def new_user(self, name: str | None = None, prefix: str = "user") -> "User":
        """Register a fresh user and log in."""
        email, password = new_email(prefix), new_password()
        r = self.register(email, password, name)
        assert r.status == 201, r
        created = r.json()
        t = self.tokens(email, password)
        return User(api=self, id=created["id"], email=email, password=password,
                    access=t["access_token"], refresh=t["refresh_token"], created=created)

    def admin(self) -> "User":
        """The ADMIN_EMAIL/ADMIN_PASSWORD user of servers started with them."""
        t = self.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)
        me = self.me(t["access_token"])
        assert me.status == 200, me
        return User(api=self, id=me.json()["id"], email=ADMIN_EMAIL, password=ADMIN_PASSWORD,
                    access=t["access_token"], refresh=t["refresh_token"], created=me.json())


@dataclass
class User:
    api: Api
    id: str
    email: str
    password: str
    access: str
    refresh: str
    created: dict = field(default_factory=dict)

    def relogin(self) -> None:
        t = self.api.tokens(self.email, self.password)
        self.access, self.refresh = t["access_token"], t["refresh_token"]

    def new_key(self, **kw) -> dict:
        r = self.api.create_key(self.access, **kw)
        assert r.status == 201, r
        return r.json()


# ------------------------------------------------------------------------- checks


def check_user(obj: dict, email: str | None = None) -> dict:
    assert set(obj) == USER_FIELDS, f"user fields: {sorted(obj)}"
    assert UUID_RE.match(obj["id"]), obj
    assert obj["role"] in ("user", "admin"), obj
    assert isinstance(obj["is_active"], bool), obj
    assert isinstance(obj["name"], str), obj
    parse_time(obj["created_at"])
    parse_time(obj["updated_at"])
    if obj["last_login_at"] is not None:
        parse_time(obj["last_login_at"])
    if email is not None:
        assert obj["email"] == email, obj
    return obj


def check_tokens(r: Response, expires_in: int = 1800) -> dict:
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    t = r.json()
    assert set(t) == TOKEN_FIELDS, t
    assert t["token_type"] == "bearer", t
    assert t["expires_in"] == expires_in, t
    assert isinstance(t["access_token"], str) and t["access_token"].count(".") == 2, t
    assert isinstance(t["refresh_token"], str) and len(t["refresh_token"]) >= 16, t
    assert t["refresh_token"] != t["access_token"]
    return t


def check_key(obj: dict, created: bool = False) -> dict:
    want = KEY_FIELDS | ({"key"} if created else set())
    assert set(obj) == want, f"key fields: {sorted(obj)}"
    assert UUID_RE.match(obj["id"]), obj
    assert isinstance(obj["scopes"], list), obj
    assert isinstance(obj["prefix"], str) and obj["prefix"], obj
    parse_time(obj["created_at"])
    if created:
        assert obj["key"].startswith("sk-chatd-"), obj
        assert obj["key"].startswith(obj["prefix"]), obj
        assert len(obj["key"]) > len(obj["prefix"]) + 16, obj
    return obj


def assert_unauthenticated(r: Response) -> dict:
    """401 with `WWW-Authenticate: Bearer` and code "unauthenticated"."""
    err = assert_error_json(r, 401, "unauthenticated")
    www = r.headers.get("www-authenticate")
    assert www and www.lower().startswith("bearer"), f"WWW-Authenticate: {www!r}; {r!r}"
    return err


def assert_invalid(r: Response, param: str) -> dict:
    err = assert_error_json(r, 400, "invalid_request")
    assert err["param"] == param, f"param {err['param']!r}, want {param!r}: {r!r}"
    return err


def assert_forbidden(r: Response) -> dict:
    return assert_error_json(r, 403, "permission_denied")


def assert_not_found(r: Response) -> dict:
    return assert_error_json(r, 404, "not_found")


def int_header(r: Response, name: str) -> int:
    v = r.headers.get(name)
    assert v is not None, f"no {name} header: {r!r}"
    assert re.fullmatch(r"\d+", v), f"{name}: {v!r} is not a non-negative integer"
    return int(v)


def assert_rate_limited(r: Response) -> int:
    """429 rate_limit_exceeded with an integer Retry-After >= 1; returns Retry-After."""
    assert_error_json(r, 429, "rate_limit_exceeded")
    retry = int_header(r, "retry-after")
    assert retry >= 1, r
    return retry


def assert_rate_headers(r: Response, limit: int) -> tuple[int, int]:
    """X-RateLimit-Limit == limit, Remaining and Reset integers; (remaining, reset)."""
    assert int_header(r, "x-ratelimit-limit") == limit, r
    remaining = int_header(r, "x-ratelimit-remaining")
    reset = int_header(r, "x-ratelimit-reset")
    assert 0 <= remaining <= limit, r
    return remaining, reset


def list_all(fetch, limit: int, max_pages: int = 1000) -> list[dict]:
    """Follow next_cursor from fetch(cursor) -> Response until null; check each page."""
    items, cursor, seen_cursors = [], None, set()
    for _ in range(max_pages):
        r = fetch(cursor)
        assert r.status == 200, r
        page = r.json()
        assert set(page) == {"data", "next_cursor"}, page
        assert len(page["data"]) <= limit, page
        items += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert isinstance(cursor, str) and cursor, page
        assert page["data"], f"a non-final page is empty: {page}"
        assert cursor not in seen_cursors, f"cursor {cursor!r} repeated"
        seen_cursors.add(cursor)
    raise AssertionError(f"pagination did not end after {max_pages} pages")


# --------------------------------------------------------------------------- JWTs


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(token: str) -> tuple[dict, dict, bytes]:
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), b64url_decode(s)


def hs256(signing_input: str, key: str | bytes = TEST_SECRET_KEY) -> str:
    if isinstance(key, str):
        key = key.encode()
    return b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())


def encode_jwt(claims: dict, key: str | bytes = TEST_SECRET_KEY, header: dict | None = None,
               signature: str | None = None) -> str:
    """Sign claims with HS256 (or use `signature` verbatim) under `header`."""
    header = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":")).encode()))
    return signing_input + "." + (hs256(signing_input, key) if signature is None else signature)


def access_claims(user_id: str, role: str = "user", ver: int = 0, ttl: int = 600,
                  **override) -> dict:
    now = int(time.time())
    claims = {"sub": user_id, "exp": now + ttl, "iat": now, "nbf": now,
              "jti": str(uuid.uuid4()), "role": role, "typ": "access", "ver": ver}
    claims.update(override)
    return {k: v for k, v in claims.items() if v is not None}


def verify_hs256(token: str, key: str | bytes = TEST_SECRET_KEY) -> bool:
    h, p, s = token.split(".")
    return hmac.compare_digest(hs256(h + "." + p, key), s)
