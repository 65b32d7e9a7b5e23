"""Access tokens (JWT HS256 signed with SECRET_KEY), forged and broken credentials, and
SECRET_KEY handling at start-up (production refuses weak keys; development generates
one into $DATA_DIR/secret_key and keeps it across restarts).

The servers run with chatd_testing.TEST_SECRET_KEY, so tests can forge tokens. A forged
token with valid claims is accepted (test_forged_token_is_accepted): that makes every
rejection below a rejection of the one thing each case breaks.
"""

import base64
import json
import os
import re
import stat
import subprocess
import time
import uuid

import pytest

from accounts_client import (
    UUID_RE, Api, access_claims, assert_unauthenticated, b64url, check_tokens, encode_jwt,
    jwt_parts, new_email, new_password, verify_hs256,
)
from chatd_testing import TEST_SECRET_KEY, chatd_bin, server_env

OTHER_KEY = "some-other-secret-key-that-is-not-chatds-0123456789"
# Production also wants ENCRYPTION_KEY (32 bytes, base64): a good one, so that SECRET_KEY
# is the only thing wrong in the tests below.
PRODUCTION = {"ENVIRONMENT": "production",
              "ENCRYPTION_KEY": base64.b64encode(bytes(range(32))).decode()}


def test_access_token_is_hs256_jwt_with_the_claims(api):
    u = api.new_user()
    header, claims, _ = jwt_parts(u.access)
    assert header == {"alg": "HS256", "typ": "JWT"}, header
    assert verify_hs256(u.access), "not signed with SECRET_KEY (HS256)"
    assert {"sub", "exp", "iat", "nbf", "jti", "role", "typ", "ver"} <= set(claims), claims
    assert claims["sub"] == u.id
    assert claims["typ"] == "access" and claims["role"] == "user" and claims["ver"] == 0, claims
    assert UUID_RE.match(claims["jti"]), claims
    for k in ("exp", "iat", "nbf", "ver"):
        assert isinstance(claims[k], int) and not isinstance(claims[k], bool), (k, claims)
    now = time.time()
    assert abs(claims["iat"] - now) < 60, claims
    assert claims["nbf"] <= now + 1, claims
    assert claims["exp"] - claims["iat"] == 1800, claims
    _, again, _ = jwt_parts(api.tokens(u.email, u.password)["access_token"])
    assert again["jti"] != claims["jti"]


def test_access_token_ttl_is_configurable(make_server):
    api = Api(make_server(ACCESS_TOKEN_EXPIRE_MINUTES="5").port)
    email, pw = new_email(), new_password()
    assert api.register(email, pw).status == 201
    t = check_tokens(api.login(email, pw), expires_in=300)
    _, claims, _ = jwt_parts(t["access_token"])
    assert claims["exp"] - claims["iat"] == 300, claims
    check_tokens(api.refresh(t["refresh_token"]), expires_in=300)


def test_forged_token_is_accepted(api):
    """The control for the rejections below: our forging matches the server's tokens."""
    u = api.new_user()
    r = api.me(encode_jwt(access_claims(u.id)))
    assert r.status == 200, r
    assert r.json()["id"] == u.id


def _now() -> int:
    return int(time.time())


def _tampered(u, **changes) -> str:
    h, _, s = u.access.split(".")
    _, claims, _ = jwt_parts(u.access)
    claims.update(changes)
    return f"{h}.{b64url(json.dumps(claims, separators=(',', ':')).encode())}.{s}"


# Each builds a credential from the user (a fresh one per case) and the server must
# answer /users/me with 401 + WWW-Authenticate: Bearer.
BAD_TOKENS = {
    "alg-none": lambda u, o: encode_jwt(access_claims(u.id), header={"alg": "none"},
                                        signature=""),
    "alg-none-typ": lambda u, o: encode_jwt(access_claims(u.id),
                                            header={"alg": "none", "typ": "JWT"}, signature=""),
    "alg-NONE-uppercase": lambda u, o: encode_jwt(access_claims(u.id),
                                                  header={"alg": "NONE", "typ": "JWT"},
                                                  signature=""),
    "other-key": lambda u, o: encode_jwt(access_claims(u.id), key=OTHER_KEY),
    "rs256-header": lambda u, o: encode_jwt(access_claims(u.id),
                                            header={"alg": "RS256", "typ": "JWT"}),
    "hs512-header": lambda u, o: encode_jwt(access_claims(u.id),
                                            header={"alg": "HS512", "typ": "JWT"}),
    "no-signature": lambda u, o: encode_jwt(access_claims(u.id), signature=""),
    "expired": lambda u, o: encode_jwt(access_claims(u.id, iat=_now() - 7200,
                                                     nbf=_now() - 7200, exp=_now() - 3600)),
    "expired-10s-ago": lambda u, o: encode_jwt(access_claims(u.id, iat=_now() - 600,
                                                            nbf=_now() - 600, exp=_now() - 10)),
    "nbf-in-future": lambda u, o: encode_jwt(access_claims(u.id, nbf=_now() + 3600,
                                                           exp=_now() + 7200)),
    "no-exp": lambda u, o: encode_jwt(access_claims(u.id, exp=None)),
    "typ-refresh": lambda u, o: encode_jwt(access_claims(u.id, typ="refresh")),
    "unknown-user": lambda u, o: encode_jwt(access_claims(str(uuid.uuid4()))),
    "tampered-role-admin": lambda u, o: _tampered(u, role="admin"),
    "tampered-sub": lambda u, o: _tampered(u, sub=o.id),
    "tampered-exp": lambda u, o: _tampered(u, exp=_now() + 10 * 365 * 86400),
    "refresh-token": lambda u, o: u.refresh,
    "garbage": lambda u, o: "garbage",
    "three-dots-garbage": lambda u, o: "a.b.c",
    "bad-base64": lambda u, o: "eyJ!!!.eyJ???.***",
    "fake-api-key": lambda u, o: "sk-chatd-" + uuid.uuid4().hex * 2,
}


@pytest.fixture(scope="module")
def two_users(accounts_server):
    """Users the bad-token cases only read: made once, to spare the password hashing."""
    api = Api(accounts_server.port)
    return api.new_user(), api.new_user()


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_bad_bearer_token_is_401(api, two_users, case):
    u, other = two_users
    token = BAD_TOKENS[case](u, other)
    r = api.me(token)
    assert_unauthenticated(r)
    # and the same credential is refused elsewhere too
    assert_unauthenticated(api.list_keys(token))
    # the user's real session is fine
    assert api.me(u.access).status == 200


@pytest.mark.parametrize("value", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNzd29yZA==",
                                   "Token abc", "Bearer a b"])
def test_malformed_authorization_header_is_401(api, value):
    assert_unauthenticated(api.call("GET", "/users/me", headers={"Authorization": value}))


def test_missing_credentials_is_401(api):
    for method, path in [("GET", "/users/me"), ("GET", "/api-keys"), ("POST", "/api-keys"),
                         ("DELETE", "/users/me"), ("GET", "/admin/users")]:
        assert_unauthenticated(api.call(method, path))


def test_bad_x_api_key_is_401(api):
    assert_unauthenticated(api.call("GET", "/users/me", api_key="garbage"))
    assert_unauthenticated(api.call("GET", "/users/me",
                                    api_key="sk-chatd-" + uuid.uuid4().hex * 2))


# ----------------------------------------------------------------- SECRET_KEY


def _serve_exit(tmp_path, **extra) -> subprocess.CompletedProcess:
    data = tmp_path / "data"
    env = server_env(data, None, {**PRODUCTION, **extra})
    proc = subprocess.Popen([str(chatd_bin()), "serve"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"chatd serve kept running with {extra}; want exit 2. stderr:\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("secret", [
    None, "", "changeme", "secret", "change-me", "your-secret-key",
    "short-but-random-Xq9#", "a" * 31,
], ids=["missing", "empty", "changeme", "secret", "change-me", "your-secret-key", "short",
        "31-bytes"])
def test_production_refuses_weak_secret_key(binary, tmp_path, secret):
    r = _serve_exit(tmp_path, SECRET_KEY=secret)
    assert r.returncode == 2, f"exit {r.returncode}; stderr:\n{r.stderr[-3000:]}"
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"want one line on stderr, got: {r.stderr!r}"
    assert "SECRET_KEY" in lines[0], lines[0]
    if secret == "short-but-random-Xq9#":
        assert secret not in r.stderr, "the rejected key is echoed"


def test_production_accepts_a_strong_secret_key(make_server):
    srv = make_server(**PRODUCTION, SECRET_KEY=uuid.uuid4().hex + uuid.uuid4().hex)
    api = Api(srv.port)
    email, pw = new_email(), new_password()
    assert api.register(email, pw).status == 201
    t = check_tokens(api.login(email, pw))
    assert not verify_hs256(t["access_token"], TEST_SECRET_KEY)


def test_development_generates_and_keeps_secret_key(make_server):
    srv = make_server(SECRET_KEY=None, ENVIRONMENT="development")
    key_file = srv.data_dir / "secret_key"
    assert key_file.is_file(), f"no {key_file}; log:\n{srv.log()}"
    mode = stat.S_IMODE(os.stat(key_file).st_mode)
    assert mode == 0o600, f"{key_file} has mode {oct(mode)}, want 0o600"
    content = key_file.read_bytes()
    assert len(content.strip()) >= 32, "generated key is shorter than 32 bytes"
    warnings = [e for e in srv.json_logs()
                if e.get("level", "").lower().startswith("warn") and
                re.search(r"secret", e.get("msg", ""), re.I)]
    assert warnings, f"no warning about the generated SECRET_KEY; log:\n{srv.log()}"
    assert content.strip().decode("latin-1") not in "\n".join(srv.lines), "key logged"

    api = Api(srv.port)
    u = api.new_user()
    # the generated key is the one in use, not some built-in default
    assert not verify_hs256(u.access, TEST_SECRET_KEY)
    assert_unauthenticated(api.me(encode_jwt(access_claims(u.id))))

    srv = make_server.restart(srv)
    assert key_file.read_bytes() == content, "secret_key rewritten on restart"
    api = Api(srv.port)
    me = api.me(u.access)
    assert me.status == 200 and me.json()["id"] == u.id, me
    check_tokens(api.refresh(u.refresh))
