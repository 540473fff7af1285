#!/usr/bin/env bash
# Creates .venv from the lock file (idempotent: skips when the lock has not changed).
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION="0.13.9"
PYTHON="${PYTHON:-python3}"
lock="requirements/dev.lock"
stamp=".venv/.lock-stamp"
want="$(sha256sum "$lock" pyproject.toml | sha256sum | cut -c1-16)-uv$UV_VERSION"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
echo "[bootstrap] creating .venv from $lock" >&2
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
.venv/bin/uv pip sync -q --python .venv/bin/python "$lock"
.venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
printf '%s' "$want" >"$stamp"
