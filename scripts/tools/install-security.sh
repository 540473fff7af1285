#!/usr/bin/env bash
# pip-audit audits requirements/dev.lock against a vulnerability database (tests/security/test_static_analysis.py).
# Its dependencies (pip-api, cyclonedx, ...) are not ours, so it lives in a private venv. bandit is in the
# project's venv already (pyproject's dev extra).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
pip_tool_venv pip-audit "pip-audit==2.10.1"
