#!/usr/bin/env bash
# Runs every install-*.sh beside this file, in parallel (downloads overlap the Go builds), and fails if any
# failed, showing its log. Each installer is idempotent, so a rerun costs seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
declare -A pids=()
started=$(date +%s)
for installer in "$here"/install-*.sh; do
  [ "$installer" = "$here/install-all.sh" ] && continue
  name="$(basename "$installer" .sh)"
  bash "$installer" >"$logs/$name.log" 2>&1 &
  pids[$name]=$!
done
failed=0
for name in $(printf '%s\n' "${!pids[@]}" | sort); do
  if wait "${pids[$name]}"; then
    grep -q . "$logs/$name.log" && sed "s/^/[$name] /" "$logs/$name.log" >&2
  else
    failed=1
    log "$name FAILED:"
    sed "s/^/[$name] /" "$logs/$name.log" >&2
  fi
done
log "tools ready in $(( $(date +%s) - started )) s ($TOOLS_BIN)"
exit "$failed"
