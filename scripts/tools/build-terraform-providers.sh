#!/usr/bin/env bash
# The Terraform providers the modules need (hashicorp/aws ~> 6.8, hashicorp/random >= 3.7), built from the Go module
# proxy into a filesystem mirror under $TOOLS_DIR/terraform-providers, with a CLI config for TF_CLI_CONFIG_FILE:
#   $TOOLS_DIR/terraform-providers/terraformrc
#
# NOT part of install-all.sh, and so not of `make test`: today the module proxy refuses both providers' main branch
# (`go list -m github.com/hashicorp/terraform-provider-aws@main` -> 403 "This module version is not available"; the
# same for terraform-provider-random). See terraform/README.md "What is and is not checked". The script stops at that
# step with the proxy's answer; run it by hand to see whether that has changed.
#
# When it resolves: the AWS provider is a very slow build (measured elsewhere: 33 minutes of 2 cores, a 1.27 GB
# binary), so it runs under `nice -n 19` and is skipped when the stamp matches. Pin the commits it prints in
# AWS_PROVIDER_VERSION / RANDOM_PROVIDER_VERSION (pseudo-versions) so that reruns build the same thing.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

AWS_PROVIDER_MODULE="github.com/hashicorp/terraform-provider-aws"
RANDOM_PROVIDER_MODULE="github.com/terraform-providers/terraform-provider-random"
# Pseudo-versions (commits of main); "main" resolves the current commit and prints it to pin.
AWS_PROVIDER_VERSION="${EMAIL_INGEST_TF_AWS_VERSION:-main}"
RANDOM_PROVIDER_VERSION="${EMAIL_INGEST_TF_RANDOM_VERSION:-main}"
# The versions the mirror offers them under: within the modules' constraints (aws ~> 6.8 and >= 6.8, random >= 3.7).
# A build of main is newer than any release; these say "some 6.x" and "some 3.x" to Terraform, nothing more.
AWS_MIRROR_VERSION="6.99.0"
RANDOM_MIRROR_VERSION="3.99.0"

MIRROR="$TOOLS_DIR/terraform-providers"
PLATFORM="$(go env GOOS)_$(go env GOARCH)"

resolve() {
  local module="$1" version="$2" resolved
  if ! resolved="$(go list -m -f '{{.Version}}' "${module}@${version}" 2>&1)"; then
    log "cannot resolve ${module}@${version} on the Go module proxy:"
    printf '%s\n' "$resolved" >&2
    return 1
  fi
  printf '%s' "$resolved"
}

# build_provider TYPE MODULE VERSION MIRROR_VERSION
build_provider() {
  local type="$1" module="$2" version="$3" mirror_version="$4" resolved dest started
  resolved="$(resolve "$module" "$version")"
  dest="$MIRROR/registry.terraform.io/hashicorp/$type/$mirror_version/$PLATFORM"
  if stamp_ok "terraform-provider-$type" "$module@$resolved" && [ -x "$dest/terraform-provider-${type}_v${mirror_version}_x5" ]; then
    return 0
  fi
  log "building terraform-provider-$type from $module@$resolved (pin it: $version -> $resolved)"
  started=$(date +%s)
  mkdir -p "$dest"
  GOBIN="$dest" GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0 nice -n 19 go install -v -ldflags "-s -w" \
    "$module@$resolved" 2>&1 |
    awk -v t="$type" '{ n++; if (n % 100 == 0) { printf "[tools] terraform-provider-%s: %d packages compiled\n", t, n; fflush() } }'
  [ "${PIPESTATUS[0]}" -eq 0 ]
  mv "$dest/$(basename "$module")" "$dest/terraform-provider-${type}_v${mirror_version}_x5"
  log "terraform-provider-$type built in $(($(date +%s) - started)) s, $(du -h "$dest/terraform-provider-${type}_v${mirror_version}_x5" | cut -f1)"
  stamp_set "terraform-provider-$type" "$module@$resolved"
}

build_provider random "$RANDOM_PROVIDER_MODULE" "$RANDOM_PROVIDER_VERSION" "$RANDOM_MIRROR_VERSION"
build_provider aws "$AWS_PROVIDER_MODULE" "$AWS_PROVIDER_VERSION" "$AWS_MIRROR_VERSION"

cat >"$MIRROR/terraformrc" <<EOF
# Written by scripts/tools/build-terraform-providers.sh: providers from the local mirror only, never the registry.
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.terraform.io/hashicorp/aws", "registry.terraform.io/hashicorp/random"]
  }
}
EOF
log "provider mirror ready: TF_CLI_CONFIG_FILE=$MIRROR/terraformrc"
