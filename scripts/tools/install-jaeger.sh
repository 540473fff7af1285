#!/usr/bin/env bash
# Jaeger v2 (`jaeger`, the all-in-one binary: OTLP receivers on gRPC and HTTP, in-memory storage, the query API and
# UI), for `make observe TRACING=jaeger` and tests/e2e/test_tracing.py. At v1.76.0 the module's cmd/jaeger is the
# OpenTelemetry-collector-based v2 binary (v1.x and v2.x tags name the same commits). Built from the Go module
# proxy in a small tools module (`go get -tool`, which resolves the module's dependencies as its own go.mod pins
# them), under `nice`: minutes of both cores on a 2-core machine, skipped when the pinned version is in $TOOLS_DIR.
# The binary listens only where devstack/jaeger.py's configuration tells it to (127.0.0.1).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

JAEGER_VERSION="v1.76.0"
GO_DIRECTIVE="1.26.0"

build_jaeger() {
  local workdir started
  command -v go >/dev/null 2>&1 || { log "jaeger is built from source with Go, which is not on PATH: install Go 1.24 or later and run this again"; return 1; }
  workdir="$(mktemp -d)"
  trap 'rm -rf "$workdir"' RETURN
  started=$(date +%s)
  log "building jaeger ${JAEGER_VERSION} from the Go module proxy (slow: niced, progress below)"
  printf 'module email-ingest.local/tools/jaeger\n\ngo %s\n' "$GO_DIRECTIVE" >"$workdir/go.mod"
  local vpkg="github.com/jaegertracing/jaeger/internal/version"
  local ldflags="-s -w -X ${vpkg}.latestVersion=${JAEGER_VERSION}"
  (
    cd "$workdir"
    GOFLAGS="${GOFLAGS:-} -trimpath" nice -n 19 go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@${JAEGER_VERSION}"
    # -v prints each package as it is compiled: the progress of a build of several minutes.
    GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0 nice -n 19 go build -v -ldflags "$ldflags" \
      -o "$TOOLS_BIN/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger 2>&1 |
      awk '{ n++; if (n % 100 == 0) { printf "[tools] jaeger: %d packages compiled\n", n; fflush() } }'
    [ "${PIPESTATUS[0]}" -eq 0 ]
  )
  mv "$TOOLS_BIN/jaeger.tmp" "$TOOLS_BIN/jaeger"
  log "jaeger ${JAEGER_VERSION} built in $(($(date +%s) - started)) s, $(du -h "$TOOLS_BIN/jaeger" | cut -f1)"
  stamp_set jaeger "$JAEGER_VERSION"
}

if ! { stamp_ok jaeger "$JAEGER_VERSION" && [ -x "$TOOLS_BIN/jaeger" ]; }; then
  build_jaeger
fi
