#!/usr/bin/env bash
# The container runtime of the single-node cluster of tests/cluster (the Kubernetes binaries themselves come from
# install-kube-apiserver.sh, all of them from one `go build`):
#   containerd, containerd-shim-runc-v2, ctr
#                                         containerd 2.x from the Go module proxy (Debian bookworm has 1.6, which
#                                         predates the CRI RuntimeConfig the kubelet takes its cgroup driver from);
#                                         no replace directives, so `go install MODULE@VERSION` builds it. Static
#                                         (CGO_ENABLED=0), without the btrfs snapshotter (cgo only) as upstream's
#                                         static builds.
#   kube-pause                            the pods' sandbox process (there is no registry to pull registry.k8s.io/pause
#                                         from): a static Go program that waits for SIGTERM/SIGINT and reaps
#                                         orphans, built here; tests/cluster packs it as an OCI image for containerd
#   runc                                  Debian's (crun fails on this cgroup v1 hybrid host)
#   bridge, host-local, loopback, portmap Debian's containernetworking-plugins, in /usr/lib/cni
#   iptables, iproute2, conntrack         for kube-proxy (iptables mode: no IPVS here) and the test's own bridge
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

CONTAINERD_VERSION="v2.4.2"
CONTAINERD_MODULE="github.com/containerd/containerd/v2"
CONTAINERD_COMMANDS=(containerd containerd-shim-runc-v2 ctr)
CONTAINERD_STAMP="${CONTAINERD_VERSION} ${CONTAINERD_COMMANDS[*]}"
PAUSE_VERSION="1"

apt_install runc containernetworking-plugins iptables iproute2 conntrack util-linux

build_containerd() {
  local started
  started=$(date +%s)
  command -v go >/dev/null 2>&1 || { log "containerd is built with Go, which is not on PATH"; return 1; }
  log "building containerd ${CONTAINERD_VERSION} from the Go module proxy (niced)"
  local ldflags="-s -w -X ${CONTAINERD_MODULE}/version.Version=${CONTAINERD_VERSION}"
  ldflags+=" -X ${CONTAINERD_MODULE}/version.Package=${CONTAINERD_MODULE}"
  local targets=() cmd
  for cmd in "${CONTAINERD_COMMANDS[@]}"; do targets+=("${CONTAINERD_MODULE}/cmd/${cmd}@${CONTAINERD_VERSION}"); done
  # One `go install` of every command: one module graph, one version.
  if ! GOBIN="$TOOLS_BIN" GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0 nice -n 19 go install \
    -tags "no_btrfs" -ldflags "$ldflags" "${targets[@]}"; then
    log "failed to build containerd"
    return 1
  fi
  log "containerd ${CONTAINERD_VERSION} built in $(($(date +%s) - started)) s"
  stamp_set containerd "$CONTAINERD_STAMP"
}

build_pause() {
  local workdir
  workdir="$(mktemp -d)"
  trap 'rm -rf "$workdir"' RETURN
  cat >"$workdir/go.mod" <<'GOMOD'
module email-ingest.local/tools/kube-pause

go 1.21
GOMOD
  cat >"$workdir/main.go" <<'GO'
// kube-pause holds a pod's namespaces: it waits for SIGINT or SIGTERM and reaps the orphans it inherits as PID 1.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  (cd "$workdir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$TOOLS_BIN/kube-pause" .)
  stamp_set kube-pause "$PAUSE_VERSION"
}

ok=1
for cmd in "${CONTAINERD_COMMANDS[@]}"; do [ -x "$TOOLS_BIN/$cmd" ] || ok=0; done
if ! { [ "$ok" = 1 ] && stamp_ok containerd "$CONTAINERD_STAMP"; }; then
  build_containerd
fi
if ! { stamp_ok kube-pause "$PAUSE_VERSION" && [ -x "$TOOLS_BIN/kube-pause" ]; }; then
  build_pause
fi
