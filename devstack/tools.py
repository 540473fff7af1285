"""Where scripts/tools/*.sh put the external tools (the rule of scripts/tools/lib.sh), and how to ask for them."""

from __future__ import annotations

import os
from pathlib import Path


def tools_dir() -> Path:
    """``$EMAIL_INGEST_TOOLS_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/email-ingest/tools`` (as lib.sh)."""
    configured = os.environ.get("EMAIL_INGEST_TOOLS_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "email-ingest" / "tools"


def tools_bin() -> Path:
    """The binaries of ``go_install`` (gofakes3, helm, ...)."""
    return tools_dir() / "bin"
