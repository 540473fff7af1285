#!/usr/bin/env bash
# checkov scans the Terraform and the rendered Helm manifests. Its dependency tree clashes with ours, so it
# lives in a private venv.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
pip_tool_venv checkov "checkov==3.3.30"
