"""`chatd version`, `chatd config check`, `chatd migrate`, bad configuration."""

import re
import subprocess

import pytest

from chatd_testing import base_env

SECRET = "s3cr3t-Key-Value-for-e2e-0123456789"
DB_PASSWORD = "p4ssw0rd-XYZ-e2e"


def run(binary, *args, env=None, timeout=30, cwd="/"):
    # cwd: chatd reads ./.env; run where no developer's .env can leak in.
    return subprocess.run([str(binary), *args], env=base_env(env), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)


def test_version(binary):
    r = run(binary, "version")
    assert r.returncode == 0, r
    assert re.fullmatch(r"chatd \S+\n?", r.stdout), repr(r.stdout)


def test_unknown_subcommand_fails(binary):
    r = run(binary, "no-such-command")
    assert r.returncode != 0, r


def test_config_check_masks_secrets(binary, tmp_path):
    r = run(binary, "config", "check", env={
        "SECRET_KEY": SECRET,
        "DATABASE_URL": f"postgresql://chatd:{DB_PASSWORD}@db.example:5432/chatd",
        "DATA_DIR": str(tmp_path / "data"),
        "PORT": "8123",
    }, cwd=tmp_path)
    assert r.returncode == 0, r
    out = r.stdout + r.stderr
    assert SECRET not in out
    assert DB_PASSWORD not in out
    assert "****" in r.stdout, r.stdout
    assert "8123" in r.stdout, r.stdout  # the effective configuration is printed
    assert re.search(r"port", r.stdout, re.I), r.stdout


def test_config_check_defaults(binary, tmp_path):
    r = run(binary, "config", "check", env={"DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path)
    assert r.returncode == 0, r
    assert "8000" in r.stdout, r.stdout
    assert "sqlite" in r.stdout.lower(), r.stdout
    assert not (tmp_path / "data" / "chatd.db").exists(), "config check created the database"


@pytest.mark.parametrize("var,value", [
    ("PORT", "abc"),
    ("PORT", "70000"),
    ("PORT", "-1"),
    ("LOG_FORMAT", "xml"),
    ("DATABASE_URL", "mysql://x"),
    ("MAX_BODY_SIZE", "lots"),
    ("HEADER_TIMEOUT", "soon"),
    ("KEEPALIVE_TIMEOUT", "abc"),
    ("MAX_CONNECTIONS", "many"),
    ("ACCESS_LOG", "maybe"),
    ("GATEWAY_CACHE", "maybe"),
    ("GATEWAY_CACHE_TTL", "soon"),
    ("GATEWAY_CACHE_TTL", "0s"),
    ("GATEWAY_CACHE_MAX_BYTES", "lots"),
    ("GATEWAY_CACHE_MAX_BYTES", "100KB"),
])
def test_config_check_rejects_bad_values(binary, tmp_path, var, value):
    r = run(binary, "config", "check", env={var: value, "DATA_DIR": str(tmp_path / "data")},
            cwd=tmp_path)
    assert r.returncode == 2, (var, value, r)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"want a single line on stderr, got: {r.stderr!r}"
    assert var in lines[0], lines[0]


def test_serve_rejects_bad_config(binary, tmp_path):
    r = run(binary, "serve", env={"PORT": "abc", "DATA_DIR": str(tmp_path / "data")},
            timeout=10, cwd=tmp_path)
    assert r.returncode == 2, r
    assert "PORT" in r.stderr


def test_migrate_creates_database(binary, tmp_path):
    data = tmp_path / "fresh" / "data"
    r = run(binary, "migrate", env={"DATA_DIR": str(data)}, cwd=tmp_path)
    assert r.returncode == 0, r
    assert (data / "chatd.db").is_file()
    # idempotent
    r = run(binary, "migrate", env={"DATA_DIR": str(data)}, cwd=tmp_path)
    assert r.returncode == 0, r
