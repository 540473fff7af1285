#!/usr/bin/env bash
# Shared helpers for the idempotent tool installers in this folder.
# Every tool lands in $TOOLS_DIR (outside the repo, so fresh clones on the same machine reuse it);
# every installer skips work when the pinned version is already there.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# devstack/tools.py is the one rule for where the tools live (stdlib only, so any python3 runs it).
TOOLS_DIR="$(python3 "$REPO_ROOT/devstack/tools.py")"
TOOLS_BIN="$TOOLS_DIR/bin"
mkdir -p "$TOOLS_BIN"
export PATH="$TOOLS_BIN:$PATH"

log() { printf '[tools] %s\n' "$*" >&2; }

# stamp_ok NAME VERSION: true when NAME was installed at VERSION by a previous run.
stamp_ok() { [ -f "$TOOLS_DIR/stamps/$1" ] && [ "$(cat "$TOOLS_DIR/stamps/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$TOOLS_DIR/stamps"; printf '%s' "$2" >"$TOOLS_DIR/stamps/$1"; }

# go_install NAME MODULE@VERSION [extra go build flags...]: builds a Go binary into $TOOLS_BIN.
go_install() {
  local name="$1" target="$2"; shift 2
  if stamp_ok "$name" "$target" && [ -x "$TOOLS_BIN/$name" ]; then return 0; fi
  # Debian's golang-go (1.19 in bookworm) is too old to fetch the toolchains these modules ask for (go >= 1.21 does).
  command -v go >/dev/null 2>&1 || { log "$name is built from source with Go, which is not on PATH: install Go 1.21 or later (https://go.dev/dl/) and run this again"; return 1; }
  log "building $name from $target (go's downloads below)"
  # Explicit failure check: callers may run this under `if` or `||`, where set -e does not apply.
  if ! GOBIN="$TOOLS_BIN" GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0 go install "$@" "$target"; then
    log "failed to build $name"
    return 1
  fi
  stamp_set "$name" "$target"
}

# apt_install PACKAGE... : installs Debian packages that are missing (CI runs as root), showing its progress
# (the downloads and each package set up: a first install can take minutes); the whole output only on failure.
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "${missing[*]} missing: install them as root (apt-get install ${missing[*]})"; return 1; }
    sudo="sudo"
  fi
  log "apt-get install ${missing[*]} (Debian packages; progress below)"
  # Installers run in parallel: one apt at a time (dpkg has a single lock).
  (
    flock 9
    if [ ! -f "$TOOLS_DIR/stamps/apt-updated" ] || [ -n "$(find "$TOOLS_DIR/stamps/apt-updated" -mmin +1440)" ]; then
      log "apt-get update"
      $sudo apt-get update -qq
      stamp_set apt-updated "$(date +%s)"
    fi
    out="$(mktemp)"
    if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" 2>&1 \
      | tee "$out" | sed -nu 's/^\(Need to get .*\|Get:.*\|Setting up .*\)$/[tools]   \1/p' >&2; then
      log "apt-get install ${missing[*]} failed:"; cat "$out" >&2; rm -f "$out"; exit 1
    fi
    rm -f "$out"
  ) 9>"$TOOLS_DIR/apt.lock"
}

# pip_tool_venv NAME REQUIREMENT: a private venv for a Python tool whose dependencies would clash with ours.
pip_tool_venv() {
  local name="$1" req="$2" venv="$TOOLS_DIR/venvs/$1"
  if stamp_ok "venv-$name" "$req" && [ -x "$venv/bin/$name" ]; then ln -sf "$venv/bin/$name" "$TOOLS_BIN/$name"; return 0; fi
  log "installing $req into its own venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$req"
  ln -sf "$venv/bin/$name" "$TOOLS_BIN/$name"
  stamp_set "venv-$name" "$req"
}
