#!/usr/bin/env bash
# Tools for the Terraform checks in tests/terraform/:
# - tflint with its bundled Terraform ruleset (the AWS ruleset is a plugin downloaded from GitHub releases,
#   which our machines cannot reach, so it is not used);
# - a Terraform CLI for `fmt`: the preinstalled `terraform` when there is one, else OpenTofu built from the Go
#   module proxy. OpenTofu's go.mod carries a replace directive (and godebug settings), which `go install
#   MODULE@VERSION` refuses, so it is built from a small tools module that repeats them.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

TFLINT_VERSION="v0.64.0"
TOFU_VERSION="v1.12.6"
# Copied from OpenTofu v1.12.6's go.mod; change them together with TOFU_VERSION.
TOFU_HCL_REPLACE="github.com/hashicorp/hcl/v2 v2.20.1 => github.com/opentofu/hcl/v2 v2.20.2-0.20251021132045-587d123c2828"
TOFU_GO_DIRECTIVE="1.26.6"

go_install tflint "github.com/terraform-linters/tflint@${TFLINT_VERSION}"

build_tofu() {
  local workdir
  workdir="$(mktemp -d)"
  trap 'rm -rf "$workdir"' RETURN
  log "building tofu from github.com/opentofu/opentofu@${TOFU_VERSION} (no terraform on PATH)"
  cat >"$workdir/go.mod" <<EOF
module email-ingest.local/tools/tofu

go ${TOFU_GO_DIRECTIVE}

godebug (
	tlsmlkem=0
	winsymlink=0
)

replace ${TOFU_HCL_REPLACE}
EOF
  (
    cd "$workdir"
    GOFLAGS="${GOFLAGS:-} -trimpath" go get "github.com/opentofu/opentofu/cmd/tofu@${TOFU_VERSION}"
    GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0 go build \
      -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
      -o "$TOOLS_BIN/tofu" github.com/opentofu/opentofu/cmd/tofu
  )
  stamp_set tofu "$TOFU_VERSION"
}

if [ "${EMAIL_INGEST_FORCE_TOFU:-0}" != "1" ] && command -v terraform >/dev/null 2>&1; then
  log "terraform found at $(command -v terraform); not building OpenTofu"
elif stamp_ok tofu "$TOFU_VERSION" && [ -x "$TOOLS_BIN/tofu" ]; then
  :
else
  build_tofu
fi
