"""The Prometheus rule files: valid, documented, and every alert covered by promtool unit tests that bite."""

from __future__ import annotations

import copy
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from observability.promql import rule_queries
from tests.observability.metrics_catalogue import known_metric
from tests.observability.promql_selectors import selectors
from tests.tooling import REPO_ROOT, require_tool, run_tool

ALERTS_DIR = REPO_ROOT / "observability" / "alerts"
RULE_FILES = sorted(ALERTS_DIR.glob("*.rules.yaml"))
TEST_FILES = sorted((ALERTS_DIR / "tests").glob("*.test.yaml"))
RUNBOOK = REPO_ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/email-ingest/email-ingest/blob/main/docs/runbook.md#"
SEVERITIES = {"critical", "warning", "info"}


@dataclass(frozen=True)
class Alert:
    file: Path
    rule: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.rule["alert"])


def _yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def alerts() -> list[Alert]:
    return [
        Alert(path, rule)
        for path in RULE_FILES
        for group in _yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


ALERTS = alerts()
ALERT_IDS = [a.name for a in ALERTS]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown document."""
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if match:
            text = re.sub(r"`|\*\*|__", "", match.group(1)).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def alert_cases(test_files: list[Path]) -> dict[str, dict[str, int]]:
    """alertname -> {"fires": n, "silent": n} over the alert_rule_test cases of promtool test files."""
    cases: dict[str, dict[str, int]] = {}
    for path in test_files:
        for test in _yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                counts = cases.setdefault(case["alertname"], {"fires": 0, "silent": 0})
                counts["fires" if case.get("exp_alerts") else "silent"] += 1
    return cases


def test_there_are_rule_files_and_alerts() -> None:
    assert [p.name for p in RULE_FILES] == ["api.rules.yaml", "consumer.rules.yaml", "targets.rules.yaml"]
    assert len(ALERTS) >= 15
    assert len(set(ALERT_IDS)) == len(ALERT_IDS), "alert names must be unique"


@pytest.mark.integration
@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    promtool = require_tool("promtool")
    run_tool([promtool, "check", "rules", str(path)])


@pytest.mark.integration
@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    promtool = require_tool("promtool")
    run_tool([promtool, "test", "rules", str(path)])


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_IDS)
def test_alert_has_severity_summary_description_and_runbook(alert: Alert) -> None:
    assert alert.rule["labels"]["severity"] in SEVERITIES
    annotations = alert.rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    url = annotations["runbook_url"]
    assert url.startswith(RUNBOOK_URL), url
    assert url.removeprefix(RUNBOOK_URL) in github_anchors(RUNBOOK.read_text(encoding="utf-8")), (
        f"{alert.name}: {url} has no heading in docs/runbook.md"
    )


def test_github_anchors_match_githubs_slugs_and_miss_absent_headings() -> None:
    anchors = github_anchors(
        "# Runbook\n## EmailIngestJobDown\n### What `it` means: 5xx & 503\n```\n# not a heading\n```\n"
    )
    assert anchors == {"runbook", "emailingestjobdown", "what-it-means-5xx--503"}
    assert "emailingestjobabsent" not in anchors


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_IDS)
def test_alert_has_a_firing_and_a_silent_promtool_case(alert: Alert) -> None:
    counts = alert_cases(TEST_FILES).get(alert.name, {"fires": 0, "silent": 0})
    assert counts["fires"] >= 1, f"no promtool test case expects {alert.name} to fire"
    assert counts["silent"] >= 1, f"no promtool test case expects {alert.name} to stay silent"


def test_coverage_check_notices_an_alert_without_tests(tmp_path: Path) -> None:
    test_file = tmp_path / "x.test.yaml"
    test_file.write_text(
        yaml.safe_dump({"tests": [{"alert_rule_test": [{"alertname": "A", "eval_time": "1m", "exp_alerts": []}]}]}),
        encoding="utf-8",
    )
    assert alert_cases([test_file]) == {"A": {"fires": 0, "silent": 1}}


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_IDS)
def test_alert_queries_only_known_metrics(alert: Alert) -> None:
    for selector in selectors(str(alert.rule["expr"])):
        assert known_metric(selector.metric), f"{alert.name}: unknown metric {selector.metric!r}"


def test_recording_rules_query_only_known_metrics() -> None:
    for path in RULE_FILES:
        for query in rule_queries(path):
            for selector in selectors(query.expr):
                assert known_metric(selector.metric), f"{query.name}: unknown metric {selector.metric!r}"


def _mutated_suite(alert: Alert, tmp_path: Path, mutate: str) -> Path:
    """A copy of the alert's rule file with the alert changed, and of its test cases pointing at it."""
    rules = _yaml(alert.file)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert.name:
                if mutate == "never_fires":
                    rule["expr"] = "vector(1) == 2"
                elif mutate == "without_for":
                    rule.pop("for")
    rule_file = tmp_path / alert.file.name
    rule_file.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    tests = []
    for path in TEST_FILES:
        suite = _yaml(path)
        if alert.file.name not in " ".join(suite["rule_files"]):
            continue
        for test in suite["tests"]:
            cases = [c for c in test.get("alert_rule_test", []) if c["alertname"] == alert.name]
            if cases:
                trimmed = copy.deepcopy(test)
                trimmed.pop("promql_expr_test", None)
                trimmed["alert_rule_test"] = cases
                tests.append(trimmed)
    suite_file = tmp_path / "mutated.test.yaml"
    suite_file.write_text(
        yaml.safe_dump({"rule_files": [str(rule_file)], "evaluation_interval": "1m", "tests": tests}, sort_keys=False),
        encoding="utf-8",
    )
    return suite_file


@pytest.mark.integration
@pytest.mark.parametrize("mutate", ["unchanged", "never_fires", "without_for"])
@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_IDS)
def test_promtool_cases_catch_a_broken_alert(alert: Alert, mutate: str, tmp_path: Path) -> None:
    """An alert that never fires, or that fires without waiting for its `for:`, must fail its test cases.

    "unchanged" checks that the extracted cases pass as they are, so that a failure means the mutation was caught.
    """
    promtool = require_tool("promtool")
    assert alert.rule.get("for"), f"{alert.name} has no `for:`"
    suite = _mutated_suite(alert, tmp_path, mutate)
    completed = subprocess.run(
        [promtool, "test", "rules", str(suite)], capture_output=True, text=True, check=False, timeout=300
    )
    output = completed.stdout + completed.stderr
    if mutate == "unchanged":
        assert completed.returncode == 0, output
    else:
        assert completed.returncode != 0, f"the promtool cases of {alert.name} still pass when it is {mutate}"
        assert "FAILED" in output
