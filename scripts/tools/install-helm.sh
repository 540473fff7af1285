#!/usr/bin/env bash
# The Helm chart's toolchain, every piece from a package registry and pinned; each step is skipped when the pinned
# version is already in $TOOLS_DIR.
#   helm           Go module proxy, built with ldflags that make it assume Kubernetes 1.$K8S_MINOR (else it assumes 1.20)
#   helm-unittest  Go module proxy, loaded as a helm plugin from $TOOLS_DIR/helm-plugins/unittest (no plugin download)
#   kubeconform    Go module proxy; validates offline against $TOOLS_DIR/k8s-schemas
#   k8s schemas    PyPI kubernetes-validate (bundles the Kubernetes OpenAPI schemas) in a private venv, rewritten into
#                  kubeconform's standalone-strict layout by tests/helm/k8s_schemas.py
set -euo pipefail
source "$(dirname "$0")/lib.sh"

HELM_VERSION="v3.21.4"
K8S_MINOR="36"
# v1.0.1 is not in the checksum database behind the module proxy (404), so the build cannot be verified; v1.0.0 is.
# Later releases carry a replace directive, which `go install module@version` refuses.
HELM_UNITTEST_VERSION="v1.0.0"
KUBECONFORM_VERSION="v0.7.0"
KUBERNETES_VALIDATE="kubernetes-validate==1.37.0"
# Kubernetes versions the rendered manifests are validated against: the chart's minimum (Chart.yaml kubeVersion)
# and the version helm is built for.
SCHEMA_K8S_VERSIONS=("1.30.0" "1.${K8S_MINOR}.0")

# The three Go builds run side by side: on a fresh machine this overlaps their module downloads and links.
go_install kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}" -ldflags "-s -w" &
kubeconform_pid=$!
go_install helm-unittest "github.com/helm-unittest/helm-unittest/cmd/helm-unittest@${HELM_UNITTEST_VERSION}" \
  -ldflags "-s -w" &
helm_unittest_pid=$!

# helm: the stamp carries the Kubernetes version too, so changing K8S_MINOR rebuilds it.
helm_stamp="helm.sh/helm/v3/cmd/helm@${HELM_VERSION} k8s=1.${K8S_MINOR}"
if ! { stamp_ok helm "$helm_stamp" && [ -x "$TOOLS_BIN/helm" ]; }; then
  log "building helm ${HELM_VERSION} (Kubernetes 1.${K8S_MINOR})"
  ldflags=""
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${K8S_MINOR}"
  done
  GOBIN="$TOOLS_BIN" GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0 \
    go install -ldflags "-s -w${ldflags}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  stamp_set helm "$helm_stamp"
fi

wait "$kubeconform_pid"
wait "$helm_unittest_pid"

# The unittest plugin, as a local folder: HELM_PLUGINS=$TOOLS_DIR/helm-plugins helm unittest CHART
plugin_dir="$TOOLS_DIR/helm-plugins/unittest"
if ! { stamp_ok helm-unittest-plugin "$HELM_UNITTEST_VERSION" && [ -x "$plugin_dir/untt" ]; }; then
  mkdir -p "$plugin_dir"
  cp "$TOOLS_BIN/helm-unittest" "$plugin_dir/untt"
  cat >"$plugin_dir/plugin.yaml" <<PLUGIN
name: "unittest"
version: "${HELM_UNITTEST_VERSION#v}"
usage: "unittest for helm charts"
description: "Unit test for helm chart in YAML with ease to keep your chart functional and robust."
ignoreFlags: false
command: "\$HELM_PLUGIN_DIR/untt"
PLUGIN
  stamp_set helm-unittest-plugin "$HELM_UNITTEST_VERSION"
fi

# Kubernetes JSON schemas for kubeconform, offline.
pip_tool_venv kubernetes-validate "$KUBERNETES_VALIDATE"
schema_dir="$TOOLS_DIR/k8s-schemas"
schema_stamp="$KUBERNETES_VALIDATE ${SCHEMA_K8S_VERSIONS[*]} $(sha256sum "$REPO_ROOT/tests/helm/k8s_schemas.py" | cut -c1-16)"
schemas_present=true
for version in "${SCHEMA_K8S_VERSIONS[@]}"; do
  [ -d "$schema_dir/v${version}-standalone-strict" ] || schemas_present=false
done
if ! { stamp_ok k8s-schemas "$schema_stamp" && $schemas_present; }; then
  rm -rf "$schema_dir"
  for version in "${SCHEMA_K8S_VERSIONS[@]}"; do
    "$TOOLS_DIR/venvs/kubernetes-validate/bin/python" "$REPO_ROOT/tests/helm/k8s_schemas.py" "$version" "$schema_dir"
  done
  stamp_set k8s-schemas "$schema_stamp"
fi
