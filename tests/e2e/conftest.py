"""Black-box tests of the chatd binary (CHATD_BIN, default build/dev/chatd)."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from chatd_testing import chatd_bin  # noqa: E402


def pytest_report_header(config):
    return [f"chatd: {chatd_bin()}"]


@pytest.fixture(scope="session")
def binary() -> Path:
    path = chatd_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"chatd binary not found at {path} (build it, or set CHATD_BIN)", pytrace=False)
    return path
