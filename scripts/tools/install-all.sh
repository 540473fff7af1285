#!/usr/bin/env bash
# Runs every install-*.sh beside this file. Each is idempotent, so a rerun costs seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for installer in "$here"/install-*.sh; do
  [ "$installer" = "$here/install-all.sh" ] && continue
  bash "$installer"
done
