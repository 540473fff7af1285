#!/usr/bin/env bash
# The Kubernetes binaries of the tests: the control plane of tests/helm/test_apiserver.py (as envtest runs one) and
# the single node of tests/cluster:
#   etcd            Debian's etcd-server package
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
#                   built from k8s.io/kubernetes on the Go module proxy, in ONE `go build` of one module graph (so
#                   they are the same version, with the same dependencies). Its go.mod replaces every k8s.io/*
#                   staging module with a folder of its own repository (./staging/src/k8s.io/...), which `go install
#                   MODULE@VERSION` refuses; so they are built from a small tools module that repeats those replace
#                   directives with the published staging versions (v0.X.Y for Kubernetes v1.X.Y).
# The build is slow (minutes of both cores: see README "Tools"); it runs under `nice` and is skipped when the pinned
# version is in $TOOLS_DIR. The binaries are told their version through ldflags, or they would call themselves v0.0.0
# and helm would refuse the chart's kubeVersion constraint (and the kubelet's node would report v0.0.0).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

KUBE_VERSION="v1.36.3"
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
# The staging modules listed in k8s.io/kubernetes@v1.36.3's go.mod replace block.
STAGING_MODULES=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client
  cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
  kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
  sample-apiserver sample-cli-plugin sample-controller streaming)
GO_DIRECTIVE="1.26.0"

# kube-apiserver first: tests/helm needs only it (and its stamp is what tests/tooling.py checks for it).
KUBE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
STAMP_VALUE="${KUBE_VERSION} ${KUBE_BINARIES[*]}"

apt_install etcd-server

build_kube_binaries() {
  local workdir started
  workdir="$(mktemp -d)"
  trap 'rm -rf "$workdir"' RETURN
  started=$(date +%s)
  local packages=() bin
  for bin in "${KUBE_BINARIES[@]}"; do packages+=("k8s.io/kubernetes/cmd/${bin}"); done
  log "building ${KUBE_BINARIES[*]} ${KUBE_VERSION} from the Go module proxy (slow: niced, progress below)"
  {
    printf 'module email-ingest.local/tools/kube-apiserver\n\ngo %s\n\ngodebug default=go1.26\n\nreplace (\n' \
      "$GO_DIRECTIVE"
    for m in "${STAGING_MODULES[@]}"; do printf '\tk8s.io/%s => k8s.io/%s %s\n' "$m" "$m" "$STAGING_VERSION"; done
    printf ')\n'
  } >"$workdir/go.mod"
  local vpkg="k8s.io/component-base/version" ldflags="-s -w"
  local minor="${KUBE_VERSION#v1.}"
  minor="${minor%%.*}"
  for pkg in "$vpkg" k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  done
  (
    cd "$workdir"
    local with_version=()
    for pkg in "${packages[@]}"; do with_version+=("${pkg}@${KUBE_VERSION}"); done
    GOFLAGS="${GOFLAGS:-} -trimpath" nice -n 19 go get "${with_version[@]}"
    mkdir -p "$workdir/out"
    # One build of every binary: -o names a folder. -v prints each package as it is compiled: the progress of a
    # build of several minutes.
    GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0 nice -n 19 go build -v -ldflags "$ldflags" \
      -o "$workdir/out/" "${packages[@]}" 2>&1 |
      awk '{ n++; if (n % 100 == 0) { printf "[tools] kubernetes: %d packages compiled\n", n; fflush() } }'
    [ "${PIPESTATUS[0]}" -eq 0 ]
  )
  for bin in "${KUBE_BINARIES[@]}"; do
    mv "$workdir/out/$bin" "$TOOLS_BIN/$bin.tmp"
    mv "$TOOLS_BIN/$bin.tmp" "$TOOLS_BIN/$bin"
  done
  log "${KUBE_BINARIES[*]} ${KUBE_VERSION} built in $(($(date +%s) - started)) s, $(du -ch "${KUBE_BINARIES[@]/#/$TOOLS_BIN/}" | tail -1 | cut -f1)"
  stamp_set kube-apiserver "$KUBE_VERSION"
  stamp_set kube-binaries "$STAMP_VALUE"
}

all_there() {
  local bin
  for bin in "${KUBE_BINARIES[@]}"; do [ -x "$TOOLS_BIN/$bin" ] || return 1; done
}

if ! { stamp_ok kube-binaries "$STAMP_VALUE" && all_there; }; then
  build_kube_binaries
fi
