"""`chatd user create`: the password comes from stdin; the user can then log in over HTTP."""

import re
import subprocess

from accounts_client import Api, check_tokens, jwt_parts, new_email, new_password
from chatd_testing import Server, base_env, server_env

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def user_create(binary, data_dir, *args, password: str, timeout=30):
    """`chatd user create ARGS` with the password on stdin (a pipe, not a terminal)."""
    env = base_env({"DATA_DIR": str(data_dir), "LOG_FORMAT": "json"})
    return subprocess.run([str(binary), "user", "create", *args], env=env,
                          input=password + "\n", capture_output=True, text=True,
                          timeout=timeout, cwd=data_dir.parent)


def migrate(binary, data_dir):
    r = subprocess.run([str(binary), "migrate"], env=base_env({"DATA_DIR": str(data_dir)}),
                       capture_output=True, text=True, timeout=30, cwd=data_dir.parent,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r


def test_user_create_admin_then_login(binary, tmp_path):
    data = tmp_path / "data"
    migrate(binary, data)
    email, pw = new_email("cli"), new_password()
    r = user_create(binary, data, "--email", email, "--name", "CLI Admin", "--admin",
                    password=pw)
    assert r.returncode == 0, r
    ids = UUID_RE.findall(r.stdout)
    assert len(ids) == 1, f"want the new user's id on stdout: {r.stdout!r}"
    plain_email, plain_pw = new_email("cli"), new_password()
    r2 = user_create(binary, data, "--email", plain_email, password=plain_pw)
    assert r2.returncode == 0, r2

    srv = Server.start(data, server_env(data, None), binary)
    try:
        api = Api(srv.port)
        t = check_tokens(api.login(email, pw))
        me = api.me(t["access_token"])
        assert me.status == 200, me
        body = me.json()
        assert body["id"] == ids[0] and body["email"] == email, body
        assert body["role"] == "admin" and body["name"] == "CLI Admin", body
        assert jwt_parts(t["access_token"])[1]["role"] == "admin"

        t2 = check_tokens(api.login(plain_email, plain_pw))
        assert api.me(t2["access_token"]).json()["role"] == "user"
    finally:
        srv.stop_and_check()


def test_user_create_duplicate_email_fails(binary, tmp_path):
    data = tmp_path / "data"
    migrate(binary, data)
    email = new_email("cli")
    assert user_create(binary, data, "--email", email, password=new_password()).returncode == 0
    r = user_create(binary, data, "--email", email.upper(), password=new_password())
    assert r.returncode != 0, r
    msg = (r.stderr + r.stdout).lower()
    assert re.search(r"exist|already|taken|duplicate|conflict", msg), r


def test_user_create_weak_password_fails(binary, tmp_path):
    data = tmp_path / "data"
    migrate(binary, data)
    r = user_create(binary, data, "--email", new_email("cli"), password="short")
    assert r.returncode != 0, r
    assert "password" in (r.stderr + r.stdout).lower(), r


def test_user_create_bad_email_fails(binary, tmp_path):
    data = tmp_path / "data"
    migrate(binary, data)
    r = user_create(binary, data, "--email", "not-an-email", password=new_password())
    assert r.returncode != 0, r
    assert "email" in (r.stderr + r.stdout).lower(), r
