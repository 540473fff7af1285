#!/usr/bin/env bash
# Tools for the observability checks (tests/observability/):
# - promtool and prometheus from Debian's `prometheus` package (`promtool check/test rules`, the end-to-end scrape test);
# - Grafana's dashboard-linter from the Go module proxy, pinned to a commit whose go.mod has no replace directive.
#   The proxy may refuse the module outright: proxy.golang.org answers 403 "This module version is not available"
#   for every version of github.com/grafana/dashboard-linter here, even its version list (@v/list) and @main, so
#   neither another pin nor a tools module with replace directives can help (both still fetch the module from the
#   proxy); GOPROXY=direct needs github.com, which this machine cannot reach. Then this installer warns, carries
#   on, and leaves the proxy's answer in $TOOLS_DIR/dashboard-linter.log: tests/observability/test_dashboards.py
#   skips the real linter on that recorded refusal only (any other missing linter fails under `make test`), and
#   the pytest port of the linter's rules in tests/observability/dashboard_lint.py checks the dashboards.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DASHBOARD_LINTER="github.com/grafana/dashboard-linter@5e22d6dc65a1"

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  apt_install prometheus
fi
promtool --version 2>&1 | head -n 1 >&2

# `go_install ... || true` runs the helper with errexit off, so judge by the binary, not by the exit status.
go_install dashboard-linter "$DASHBOARD_LINTER" 2>"$TOOLS_DIR/dashboard-linter.log" || true
if [ ! -x "$TOOLS_BIN/dashboard-linter" ]; then
  rm -f "$TOOLS_DIR/stamps/dashboard-linter"
  log "WARNING: could not build $DASHBOARD_LINTER (full output in $TOOLS_DIR/dashboard-linter.log):"
  grep -v '^\[tools\]' "$TOOLS_DIR/dashboard-linter.log" | sed -n '1,2p' >&2
  log "the dashboards are still checked by the rule port in tests/observability/dashboard_lint.py"
fi
