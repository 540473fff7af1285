"""observability.promql: the expressions the end-to-end test runs against a real Prometheus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from observability.promql import (
    BUILTIN_VALUES,
    all_queries,
    dashboard_queries,
    rule_queries,
    substitute,
    variable_values,
)
from tests.tooling import REPO_ROOT

VALUES = {**BUILTIN_VALUES, "job": ".+", "instance": ".+", "namespace": ".*"}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('rate(x{job=~"$job"}[$__rate_interval])', 'rate(x{job=~".+"}[1m])'),
        ('x{namespace=~"${namespace}"}', 'x{namespace=~".*"}'),
        ('x{instance=~"${instance:regex}"}', 'x{instance=~".+"}'),
        ('increase(x{job=~"[[job]]"}[$__range])', 'increase(x{job=~".+"}[1h])'),
        ("sum(x) / 0.001", "sum(x) / 0.001"),
    ],
)
def test_substitute(expr: str, expected: str) -> None:
    assert substitute(expr, VALUES) == expected


def test_substitute_rejects_an_unknown_variable() -> None:
    with pytest.raises(KeyError, match=r"\$cluster"):
        substitute('x{cluster=~"$cluster"}', VALUES)


def test_variable_values_use_the_all_value_or_the_current_one() -> None:
    dashboard = {
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {"name": "namespace", "type": "query", "includeAll": True, "allValue": ".*"},
                {"name": "job", "type": "query", "includeAll": True, "allValue": None},
                {"name": "quantile", "type": "custom", "includeAll": False, "current": {"value": "0.99"}},
            ]
        }
    }
    values = variable_values(dashboard)
    assert values["namespace"] == ".*"
    assert values["job"] == ".*"
    assert values["quantile"] == "0.99"
    assert "datasource" not in values
    assert values["__rate_interval"] == "1m"


def test_dashboard_queries_cover_targets_and_variable_selectors(tmp_path: Path) -> None:
    dashboard = {
        "templating": {
            "list": [
                {"name": "job", "type": "query", "includeAll": True, "allValue": ".+",
                 "query": 'label_values(up{namespace=~"$namespace"}, job)'},
                {"name": "namespace", "type": "query", "includeAll": True, "allValue": ".*",
                 "query": {"query": "label_values(build_info, namespace)", "refId": "A"}},
            ]
        },
        "panels": [
            {"type": "row", "title": "r", "panels": [
                {"type": "timeseries", "title": "nested", "targets": [{"refId": "A", "expr": 'up{job=~"$job"}'}]},
            ]},
            {"type": "text", "title": "no targets"},
            {"type": "stat", "title": "S",
             "targets": [{"refId": "B", "expr": "rate(x[$__rate_interval])"}, {"refId": "C"}]},
        ],
    }  # fmt: skip
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dashboard), encoding="utf-8")
    got = {(q.name, q.promql) for q in dashboard_queries(path)}
    assert got == {
        ("panel 'nested' target A", 'up{job=~".+"}'),
        ("panel 'S' target B", "rate(x[1m])"),
        ("variable job", 'up{namespace=~".*"}'),
        ("variable namespace", "build_info"),
    }


def test_rule_queries_name_alerts_and_recording_rules(tmp_path: Path) -> None:
    path = tmp_path / "x.rules.yaml"
    path.write_text(
        "groups:\n  - name: g\n    rules:\n      - record: a:b:rate5m\n        expr: sum(rate(b_total[5m]))\n"
        "      - alert: BIsHigh\n        expr: |\n          a:b:rate5m > 1\n        for: 5m\n",
        encoding="utf-8",
    )
    assert [(q.name, q.promql) for q in rule_queries(path)] == [
        ("g record a:b:rate5m", "sum(rate(b_total[5m]))"),
        ("g alert BIsHigh", "a:b:rate5m > 1"),
    ]


def test_all_queries_reads_every_committed_dashboard_and_rule_file() -> None:
    queries = all_queries()
    sources = {q.source for q in queries}
    assert {
        p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "observability/dashboards").glob("*.json")
    } <= sources
    assert {
        p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "observability/alerts").glob("*.rules.yaml")
    } <= sources
    assert len(queries) > 100
    for query in queries:
        assert "$" not in query.promql, query
        assert "[1m]" in query.promql or "$__rate_interval" not in query.expr
