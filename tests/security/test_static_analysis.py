"""bandit over the shipped and dev packages, pip-audit over requirements/dev.lock.

bandit runs at every severity. A finding passes only when the project already decided about the same check:
ruff's flake8-bandit rule (Sxxx) is ignored for that file in pyproject.toml, or the line carries a
`# noqa: Sxxx` (with its reason beside it), or it is listed in REVIEWED below with the reason. Anything else
fails the test, so a new finding needs a decision, not just a rerun.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.tooling import REPO_ROOT, require_tool, run_tool

PACKAGES = ["api_service", "consumer_service", "ingest_common", "devstack"]
# bandit test id -> ruff rule id (flake8-bandit ports)
RUFF_EQUIVALENT = {
    "B101": "S101",
    "B105": "S105",
    "B106": "S106",
    "B310": "S310",
    "B311": "S311",
    "B404": "S404",
    "B603": "S603",
    "B607": "S607",
}
REVIEWED: dict[tuple[str, str], str] = {
    ("devstack/bootstrap.py", "B105"): "the placeholder credentials moto accepts; dev only",
    ("devstack/elasticmq.py", "B105"): "the placeholder credentials ElasticMQ accepts; dev only",
    ("devstack/elasticmq.py", "B404"): "starts the ElasticMQ JVM with arguments it builds itself",
    ("devstack/processes.py", "B404"): "starts the local stack's processes with arguments it builds itself",
    ("api_service/openapi.py", "B105"): "the literal '<token>' placeholder of the document's example",
}
_NOQA = re.compile(r"#\s*noqa:\s*([A-Z0-9, ]+)")


def _ruff_ignores() -> tuple[set[str], dict[str, set[str]]]:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    per_file = {pattern: set(codes) for pattern, codes in config.get("per-file-ignores", {}).items()}
    return set(config.get("ignore", [])), per_file


def undecided(findings: list[dict[str, Any]]) -> list[str]:
    """The findings the project has not decided about (see the module docstring)."""
    ignored, per_file = _ruff_ignores()
    left = []
    for finding in findings:
        source = Path(finding["filename"]).resolve()
        path = source.relative_to(REPO_ROOT).as_posix() if source.is_relative_to(REPO_ROOT) else str(source)
        test_id = finding["test_id"]
        ruff_code = RUFF_EQUIVALENT.get(test_id)
        line = source.read_text().splitlines()[finding["line_number"] - 1]
        noqa = _NOQA.search(line)
        decided = (
            (path, test_id) in REVIEWED
            or (ruff_code is not None and ruff_code in ignored)
            or any(ruff_code in codes and fnmatch.fnmatch(path, pattern) for pattern, codes in per_file.items())
            or (ruff_code is not None and noqa is not None and ruff_code in noqa.group(1).replace(" ", "").split(","))
        )
        if not decided:
            left.append(f"{path}:{finding['line_number']} {test_id} {finding['issue_text']}")
    return left


def _bandit(*targets: str) -> list[dict[str, Any]]:
    completed = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-r", *targets, "-f", "json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode in {0, 1}, completed.stderr  # 1: findings, which we judge below
    report = json.loads(completed.stdout)
    assert not report["errors"], report["errors"]
    results: list[dict[str, Any]] = report["results"]
    return results


@pytest.mark.integration
def test_bandit_has_no_undecided_findings() -> None:
    findings = _bandit(*PACKAGES)
    assert findings, "bandit reported nothing at all: is it scanning the packages?"
    assert undecided(findings) == []


@pytest.mark.integration
def test_bandit_judgement_catches_a_new_finding(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import subprocess\n\n\ndef run(command: str) -> None:\n    subprocess.call(command, shell=True)\n"
    )
    left = undecided(_bandit(str(probe)))
    assert any("B602" in item for item in left), left


def _pypi_json_reachable() -> str | None:
    """None when PyPI's JSON API (pip-audit's 'pypi' vulnerability service) answers; else why not."""
    url = "https://pypi.org/pypi/pip/24.0/json"  # the per-version document pip-audit reads
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{url}: {exc}"
    return None


def audit_verdict(report: dict[str, Any]) -> tuple[list[str], int, list[str]]:
    """(vulnerabilities, audited count, skipped reasons) of a `pip-audit -f json` report."""
    vulnerabilities: list[str] = []
    skipped: list[str] = []
    audited = 0
    for dependency in report["dependencies"]:
        if "skip_reason" in dependency:
            skipped.append(f"{dependency['name']}: {dependency['skip_reason']}")
            continue
        audited += 1
        vulnerabilities.extend(
            f"{dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {vuln.get('fix_versions')})"
            for vuln in dependency.get("vulns", [])
        )
    return vulnerabilities, audited, skipped


def test_audit_verdict_reports_vulnerabilities_and_skips() -> None:
    report = {
        "dependencies": [
            {"name": "aiohttp", "version": "3.8.0", "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["3.9.2"]}]},
            {"name": "orjson", "version": "3.10.0", "vulns": []},
            {"name": "private", "skip_reason": "Dependency not found on PyPI and could not be audited"},
        ]
    }
    vulnerabilities, audited, skipped = audit_verdict(report)
    assert vulnerabilities == ["aiohttp 3.8.0: GHSA-xxxx (fixed in ['3.9.2'])"]
    assert (audited, len(skipped)) == (2, 1)


def test_pip_audit_dev_lock() -> None:
    pip_audit = require_tool("pip-audit")
    unreachable = _pypi_json_reachable()
    if unreachable is not None:
        pytest.skip(f"pip-audit's vulnerability service (PyPI's JSON API) is unreachable from here: {unreachable}")
    completed = run_tool(
        [
            pip_audit,
            "--requirement",
            "requirements/dev.lock",
            "--vulnerability-service",
            "pypi",
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
        ],
        timeout=600,
    )
    vulnerabilities, audited, skipped = audit_verdict(json.loads(completed.stdout))
    assert vulnerabilities == []
    # Every pinned dependency must really have been looked up: a silent skip is not a clean audit.
    assert skipped == [], skipped
    assert audited > 50
