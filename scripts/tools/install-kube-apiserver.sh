#!/usr/bin/env bash
# A Kubernetes control plane without a kubelet (as envtest runs one), for tests/helm/test_apiserver.py:
#   etcd            Debian's etcd-server package
#   kube-apiserver  built from k8s.io/kubernetes on the Go module proxy. Its go.mod replaces every k8s.io/* staging
#                   module with a folder of its own repository (./staging/src/k8s.io/...), which `go install
#                   MODULE@VERSION` refuses; so it is built from a small tools module that repeats those replace
#                   directives with the published staging versions (v0.X.Y for Kubernetes v1.X.Y).
# The build is slow (minutes of both cores: see README "Tools"); it runs under `nice` and is skipped when the pinned
# version is in $TOOLS_DIR. The binary is told its version through ldflags, or it would call itself v0.0.0 and helm
# would refuse the chart's kubeVersion constraint.
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

apt_install etcd-server

build_kube_apiserver() {
  local workdir started
  workdir="$(mktemp -d)"
  trap 'rm -rf "$workdir"' RETURN
  started=$(date +%s)
  log "building kube-apiserver ${KUBE_VERSION} from the Go module proxy (slow: niced, progress below)"
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
    GOFLAGS="${GOFLAGS:-} -trimpath" nice -n 19 go get "k8s.io/kubernetes/cmd/kube-apiserver@${KUBE_VERSION}"
    # -v prints each package as it is compiled: the progress of a build of several minutes.
    GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0 nice -n 19 go build -v -ldflags "$ldflags" \
      -o "$TOOLS_BIN/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver 2>&1 |
      awk '{ n++; if (n % 100 == 0) { printf "[tools] kube-apiserver: %d packages compiled\n", n; fflush() } }'
    [ "${PIPESTATUS[0]}" -eq 0 ]
  )
  mv "$TOOLS_BIN/kube-apiserver.tmp" "$TOOLS_BIN/kube-apiserver"
  log "kube-apiserver ${KUBE_VERSION} built in $(($(date +%s) - started)) s, $(du -h "$TOOLS_BIN/kube-apiserver" | cut -f1)"
  stamp_set kube-apiserver "$KUBE_VERSION"
}

if ! { stamp_ok kube-apiserver "$KUBE_VERSION" && [ -x "$TOOLS_BIN/kube-apiserver" ]; }; then
  build_kube_apiserver
fi
