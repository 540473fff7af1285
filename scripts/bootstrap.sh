#!/usr/bin/env bash
# Creates .venv from the lock file (idempotent: skips when the lock has not changed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
lock="requirements/dev.lock"
# uv itself is pinned, with its hashes, in requirements/uv.lock (`make lock` refreshes them for that version).
uv_lock="requirements/uv.lock"
UV_VERSION="$(sed -n 's/^uv==\([^ ]*\).*/\1/p' "$uv_lock")"
stamp=".venv/.lock-stamp"
want="$(sha256sum "$lock" "$uv_lock" pyproject.toml | sha256sum | cut -c1-16)-uv$UV_VERSION"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
echo "[bootstrap] creating .venv from $lock" >&2
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Every wheel is checked against the locks' hashes (--require-hashes); only the project itself, installed
# editable from this checkout, has none.
.venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r "$uv_lock"
.venv/bin/uv pip sync -q --require-hashes --python .venv/bin/python "$lock"
.venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
printf '%s' "$want" >"$stamp"
