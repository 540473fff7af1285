"""Where the external tools live (scripts/tools/*.sh install them there), and how to find one.

This is the one definition of the tools directory: the Makefile and scripts/tools/lib.sh ask it with
``python3 devstack/tools.py`` (stdlib only, so it runs before .venv exists), and devstack, observability, the
bench, the soak and the tests import it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def tools_dir() -> Path:
    """``$EMAIL_INGEST_TOOLS_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/email-ingest/tools``.

    Outside the repository, so that fresh clones and worktrees on one machine share the (slow) builds.
    """
    configured = os.environ.get("EMAIL_INGEST_TOOLS_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "email-ingest" / "tools"


def tools_bin() -> Path:
    """The binaries of ``go_install`` and the other installers (gofakes3, helm, promtool's friends, ...)."""
    return tools_dir() / "bin"


def search_path() -> str:
    """``PATH`` with :func:`tools_bin` in front: the pinned build wins over whatever the system has."""
    return os.pathsep.join([str(tools_bin()), os.environ.get("PATH", "")])


def find_tool(name: str) -> str | None:
    """The path of an external tool, in :func:`tools_bin` or on ``PATH``; None when it is not installed."""
    return shutil.which(name, path=search_path())


if __name__ == "__main__":
    sys.stdout.write(f"{tools_dir()}\n")
