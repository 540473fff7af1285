#!/usr/bin/env bash
# Building and running the two images without a Docker engine (tests/images/):
#   buildah, podman, skopeo, umoci, runc  Debian's daemonless builder and runtime, with their helpers
#   $TOOLS_DIR/containers/containers.conf runc (crun fails on this cgroup v1/hybrid host) and default ulimits within
#                                         the VM's hard limit (without CAP_SYS_RESOURCE podman cannot raise them)
#   $TOOLS_DIR/containers/storage.conf    the project's own image store under $TOOLS_DIR (not /var/lib/containers)
#   $TOOLS_DIR/containers/base.oci.tar    the stand-in for the Dockerfiles' digest-pinned python base: no registry
#                                         is reachable, so a Debian bookworm root with Debian's python3.11 (3.11.2
#                                         under /usr, linked from /usr/local/bin), made once with debootstrap and
#                                         kept as an OCI archive that tests/images/build.py imports when missing.
# Point the tools at the two files with CONTAINERS_CONF and CONTAINERS_STORAGE_CONF (tests/images/build.py does).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

CONTAINERS_DIR="$TOOLS_DIR/containers"
BASE_ARCHIVE="$CONTAINERS_DIR/base.oci.tar"
BASE_IMAGE="localhost/email-ingest-base:bookworm-python3.11"
BASE_SUITE="bookworm"
BASE_PACKAGES="python3.11,python3.11-venv,python3-distutils,ca-certificates,netbase,tzdata"
# Bump when the recipe below changes: the stamp then no longer matches and the base is made again.
BASE_RECIPE="3:$BASE_SUITE:$BASE_PACKAGES"

# debian-archive-keyring: debootstrap checks the bookworm archive with it (preinstalled on Debian, not on Ubuntu).
apt_install buildah podman skopeo umoci runc debootstrap fuse-overlayfs slirp4netns uidmap debian-archive-keyring

mkdir -p "$CONTAINERS_DIR/storage" "$CONTAINERS_DIR/run"
cat >"$CONTAINERS_DIR/containers.conf.tmp" <<'EOF'
# Written by scripts/tools/install-containers.sh.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
mv "$CONTAINERS_DIR/containers.conf.tmp" "$CONTAINERS_DIR/containers.conf"
cat >"$CONTAINERS_DIR/storage.conf.tmp" <<EOF
# Written by scripts/tools/install-containers.sh.
[storage]
driver = "overlay"
graphroot = "$CONTAINERS_DIR/storage"
runroot = "$CONTAINERS_DIR/run"
EOF
mv "$CONTAINERS_DIR/storage.conf.tmp" "$CONTAINERS_DIR/storage.conf"
export CONTAINERS_CONF="$CONTAINERS_DIR/containers.conf" CONTAINERS_STORAGE_CONF="$CONTAINERS_DIR/storage.conf"

root="" container=""
cleanup() {
  if [ -n "$container" ]; then buildah rm "$container" >/dev/null 2>&1 || true; fi
  if [ -n "$root" ]; then rm -rf "$root" "$root.tar"; fi
}
trap cleanup EXIT

make_base() {
  local started
  started=$(date +%s)
  root="$(mktemp -d "$CONTAINERS_DIR/base-root.XXXXXX")"
  chmod 0755 "$root"  # the image's /: mktemp made it 0700
  log "making the stand-in base: debootstrap --variant=minbase $BASE_SUITE with $BASE_PACKAGES (about 80 s)"
  # The same mirror as the host's apt sources (reachable here); niced: two cores are shared.
  nice -n 10 debootstrap --variant=minbase --include="$BASE_PACKAGES" "$BASE_SUITE" "$root" \
    http://deb.debian.org/debian >"$CONTAINERS_DIR/debootstrap.log" 2>&1 ||
    { log "debootstrap failed:"; tail -n 30 "$CONTAINERS_DIR/debootstrap.log" >&2; return 1; }
  # Like a python slim image (Debian's slim images drop docs, man pages and translations): python on
  # /usr/local/bin, and no downloaded packages or apt lists.
  ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python3.11"
  ln -sf python3.11 "$root/usr/local/bin/python3"
  ln -sf python3.11 "$root/usr/local/bin/python"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/cache/debconf/*-old \
    "$root"/debootstrap
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  # A tar without the device nodes and mount points' contents debootstrap made; `buildah add` unpacks it.
  tar -C "$root" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -cf "$root.tar" .
  container="$(buildah from scratch)"
  buildah add --quiet "$container" "$root.tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd python3 --label "org.opencontainers.image.description=email-ingest stand-in base: $BASE_RECIPE" \
    "$container"
  buildah commit --quiet --rm "$container" "$BASE_IMAGE" >/dev/null
  container=""
  rm -f "$BASE_ARCHIVE.tmp"
  buildah push --quiet "$BASE_IMAGE" "oci-archive:$BASE_ARCHIVE.tmp:$BASE_IMAGE"
  mv "$BASE_ARCHIVE.tmp" "$BASE_ARCHIVE"
  log "stand-in base made in $(($(date +%s) - started)) s: $BASE_ARCHIVE ($(du -h "$BASE_ARCHIVE" | cut -f1))"
  stamp_set containers-base "$BASE_RECIPE"
}

if ! { stamp_ok containers-base "$BASE_RECIPE" && [ -f "$BASE_ARCHIVE" ]; }; then
  make_base
fi
