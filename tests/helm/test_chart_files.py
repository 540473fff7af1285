"""Checks of the Helm chart's files that need no external tool.

- the chart's copies of the alert rules and dashboards match observability/ byte for byte, and the sync script
  (scripts/sync-chart-observability.sh) makes them so;
- every check skipped in helm/.checkov.yaml carries its reason;
- the chart's README documents every value.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tooling import REPO_ROOT, run_tool

CHART = REPO_ROOT / "helm" / "email-ingest"
CHECKOV_CONFIG = REPO_ROOT / "helm" / ".checkov.yaml"
SYNC_SCRIPT = REPO_ROOT / "scripts" / "sync-chart-observability.sh"
SYNC_HINT = "run scripts/sync-chart-observability.sh"
# (source folder, file pattern, the chart's copy)
OBSERVABILITY_COPIES = {
    "alerts": (REPO_ROOT / "observability" / "alerts", "*.rules.yaml", CHART / "files" / "alerts"),
    "dashboards": (REPO_ROOT / "observability" / "dashboards", "*.json", CHART / "files" / "dashboards"),
}


# --- the chart's copies of observability/ ---------------------------------------------------------------------------


def copy_differences(source_dir: Path, pattern: str, copy_dir: Path) -> list[str]:
    """What differs between the source files and the chart's copies (empty when they match byte for byte)."""
    sources = {p.name: p for p in source_dir.glob(pattern)}
    copies = {p.name: p for p in copy_dir.glob("*") if p.is_file()}
    problems = [f"missing in the chart: {name}" for name in sorted(sources.keys() - copies.keys())]
    problems += [f"not in {source_dir.name}/ (stale copy): {name}" for name in sorted(copies.keys() - sources.keys())]
    problems += [
        f"differs: {name}"
        for name in sorted(sources.keys() & copies.keys())
        if sources[name].read_bytes() != copies[name].read_bytes()
    ]
    return problems


@pytest.mark.parametrize("kind", sorted(OBSERVABILITY_COPIES))
def test_chart_copies_match_observability(kind: str) -> None:
    source_dir, pattern, copy_dir = OBSERVABILITY_COPIES[kind]
    assert list(source_dir.glob(pattern)), f"no {pattern} in {source_dir}"
    problems = copy_differences(source_dir, pattern, copy_dir)
    assert not problems, f"helm/email-ingest/files/{kind} is out of date ({SYNC_HINT}):\n" + "\n".join(problems)


def test_copy_check_detects_a_difference(tmp_path: Path) -> None:
    source, copy = tmp_path / "src", tmp_path / "copy"
    source.mkdir()
    copy.mkdir()
    (source / "a.rules.yaml").write_text("groups: []\n")
    (copy / "a.rules.yaml").write_text("groups: []\n")
    assert copy_differences(source, "*.rules.yaml", copy) == []
    (copy / "a.rules.yaml").write_text("groups: [] \n")
    (copy / "stale.rules.yaml").write_text("groups: []\n")
    (source / "b.rules.yaml").write_text("groups: []\n")
    assert copy_differences(source, "*.rules.yaml", copy) == [
        "missing in the chart: b.rules.yaml",
        "not in src/ (stale copy): stale.rules.yaml",
        "differs: a.rules.yaml",
    ]


@pytest.mark.integration
def test_sync_script_replaces_the_chart_copies(tmp_path: Path) -> None:
    """The script, run in a scratch tree, copies the sources and removes copies that have no source."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(SYNC_SCRIPT, tmp_path / "scripts" / SYNC_SCRIPT.name)
    alerts, dashboards = tmp_path / "observability" / "alerts", tmp_path / "observability" / "dashboards"
    alerts.mkdir(parents=True)
    dashboards.mkdir(parents=True)
    (alerts / "api.rules.yaml").write_bytes(b"groups:\n  - name: a\n    rules: []\n")
    (dashboards / "api.json").write_bytes(b'{"title": "API"}\n')
    (dashboards / "generate.py").write_text("# not a dashboard\n")
    files = tmp_path / "helm" / "email-ingest" / "files"
    (files / "alerts").mkdir(parents=True)
    (files / "dashboards").mkdir(parents=True)
    (files / "alerts" / "placeholder.rules.yaml").write_text("groups: []\n")
    (files / "dashboards" / "api.json").write_text("{}\n")

    run_tool(["bash", str(tmp_path / "scripts" / SYNC_SCRIPT.name)], cwd=tmp_path)

    for kind, pattern in (("alerts", "*.rules.yaml"), ("dashboards", "*.json")):
        assert copy_differences(tmp_path / "observability" / kind, pattern, files / kind) == []
    assert not (files / "dashboards" / "generate.py").exists()


# --- the chart's README ----------------------------------------------------------------------------------------------


def _leaf_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaf_paths(value, f"{path}.")
        else:
            yield path


def test_readme_documents_every_value() -> None:
    """Every key of values.yaml is in the README's values table, by name or under a documented `prefix.*`."""
    documented = set(re.findall(r"`([A-Za-z0-9_.*/-]+)`", (CHART / "README.md").read_text()))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = []
    for path in _leaf_paths(values):
        parts = path.split(".")
        ancestors = {".".join(parts[:i]) + ".*" for i in range(1, len(parts))}
        if path not in documented and not ancestors & documented:
            missing.append(path)
    assert not missing, f"values missing from helm/email-ingest/README.md: {missing}"


def test_every_checkov_skip_has_a_reason() -> None:
    lines = CHECKOV_CONFIG.read_text().splitlines()
    skips = yaml.safe_load(CHECKOV_CONFIG.read_text()).get("skip-check", [])
    assert skips, "no skip-check list"
    for check_id in skips:
        index = next(i for i, line in enumerate(lines) if line.strip() == f"- {check_id}")
        comment: list[str] = []
        while index > 0 and lines[index - 1].strip().startswith("#"):
            index -= 1
            comment.insert(0, lines[index].strip())
        message = f"{check_id} is skipped in {CHECKOV_CONFIG.name} without a reason in the comment above it"
        assert comment, message
        assert comment[0].startswith(f"# {check_id} "), message
        assert len(" ".join(comment)) > 80, message
