"""Locating and running the external tools that scripts/tools/install-all.sh installs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from devstack.elasticmq import install_problem
from devstack.gofakes3 import gofakes3_binary
from devstack.tools import find_tool, search_path, tools_bin, tools_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = tools_dir()
TOOLS_BIN = tools_bin()


def require_tool(name: str) -> str:
    """Path of an external tool; fails under `make test` (EMAIL_INGEST_REQUIRE_TOOLS=1), skips elsewhere."""
    found = find_tool(name)
    if found:
        return found
    message = f"{name} is not installed: run `make tools` (scripts/tools/install-all.sh)"
    if os.environ.get("EMAIL_INGEST_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def run_tool(
    args: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Runs a tool and fails the test with its output when it exits non-zero."""
    merged_env = {**os.environ, "PATH": search_path()}
    if env:
        merged_env.update(env)
    completed = subprocess.run(
        list(args), cwd=cwd or REPO_ROOT, env=merged_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if completed.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {completed.returncode}\n"
            f"--- stdout\n{completed.stdout}\n--- stderr\n{completed.stderr}"
        )
    return completed


def require_fast_backend() -> None:
    """ElasticMQ (and its Java runtime) and gofakes3, the servers of LOCAL_AWS=fast; fails under `make test`, skips
    elsewhere, like require_tool."""

    problem = install_problem() or (None if gofakes3_binary().is_file() else f"{gofakes3_binary()} is missing")
    if problem:
        message = f"LOCAL_AWS=fast: {problem}: run scripts/tools/install-elasticmq.sh and install-gofakes3.sh"
        if os.environ.get("EMAIL_INGEST_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
