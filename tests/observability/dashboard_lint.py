"""The rules of Grafana's dashboard-linter (`dashboard-linter lint --strict`), ported for the tests.

The Go module proxy this project uses refuses to serve github.com/grafana/dashboard-linter, so its default rule
set is re-implemented here from its documentation and sources (strict mode: warnings count as errors), plus
this project's own rule that every selector carries `namespace=~"$namespace"`. When the real linter is installed,
tests/observability/test_dashboards.py runs it as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tests.observability.promql_selectors import selectors

# Grafana unit ids (grafana-data valueFormats/categories), the ones a dashboard of this kind can use.
VALID_UNITS = frozenset(
    {
        "none", "string", "short", "percent", "percentunit", "sci", "locale",
        "bytes", "decbytes", "bits", "decbits", "kbytes", "deckbytes", "mbytes", "decmbytes",
        "pps", "binBps", "Bps", "binbps", "bps", "KiBs", "KBs", "MiBs", "MBs",
        "hertz", "ns", "µs", "ms", "s", "m", "h", "d", "dtdurationms", "dtdurations", "dthms", "dtdhms",
        "cps", "ops", "reqps", "rps", "wps", "iops", "cpm", "opm", "rpm", "wpm",
        "dateTimeAsIso", "dateTimeFromNow", "bool", "bool_yes_no", "bool_on_off",
    }
)  # fmt: skip
PANELS_WITH_DATASOURCE = frozenset({"singlestat", "graph", "table", "timeseries"})
PANELS_WITH_QUERIES = frozenset({"stat", "singlestat", "graph", "table", "timeseries", "gauge"})
DATASOURCE_REFS = frozenset({"$datasource", "${datasource}"})
TEMPLATE_FUNCTION = re.compile(r"(?P<function>[a-z_]+)\((?P<argument>.+)\)")


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _uid(datasource: Any) -> str:
    if isinstance(datasource, dict):
        return str(datasource.get("uid", ""))
    return str(datasource or "")


def _template_errors(dashboard: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    datasources = [v for v in variables.values() if v.get("type") == "datasource"]
    if not datasources:
        return ["template-datasource-rule: no templated data source"]
    for ds in datasources:
        allowed_names = {f"{ds.get('query', '').lower()}_datasource"} | (
            {"datasource"} if len(datasources) == 1 else set()
        )
        allowed_labels = {f"{ds.get('query', '').title()} data source"} | (
            {"Data source"} if len(datasources) == 1 else set()
        )
        if ds["name"] not in allowed_names:
            errors.append(f"template-datasource-rule: data source variable named {ds['name']!r}")
        if ds.get("label") not in allowed_labels:
            errors.append(f"template-datasource-rule: data source variable labelled {ds.get('label')!r}")
    if datasources[0].get("query") != "prometheus":
        return errors
    for name in ("job", "instance"):
        variable = variables.get(name)
        if variable is None:
            errors.append(f"template-{name}-rule: missing the {name} template")
            continue
        rule = f"template-{name}-rule"
        if _uid(variable.get("datasource")) not in DATASOURCE_REFS:
            errors.append(f"{rule}: datasource is {_uid(variable.get('datasource'))!r}, not '$datasource'")
        if variable.get("type") != "query":
            errors.append(f"{rule}: type is {variable.get('type')!r}, not a Prometheus query")
        if variable.get("label") != name.title():
            errors.append(f"{rule}: label is {variable.get('label')!r}, not {name.title()!r}")
        if not variable.get("multi"):
            errors.append(f"{rule}: not a multi select")
        if variable.get("allValue") != ".+":
            errors.append(f"{rule}: allValue is {variable.get('allValue')!r}, not '.+'")
    for variable in variables.values():
        if variable.get("type") != "query":
            continue
        query = variable["query"] if isinstance(variable["query"], str) else variable["query"].get("query", "")
        match = TEMPLATE_FUNCTION.fullmatch(query.strip())
        if not match or match.group("function") not in {"label_names", "label_values", "metrics", "query_result"}:
            errors.append(f"template-label-promql-rule: variable {variable['name']} has query {query!r}")
        if variable.get("refresh") != 2:
            errors.append(f"template-on-time-change-reload: variable {variable['name']} refresh is not 2")
    return errors


def _target_errors(panel: dict[str, Any], target: dict[str, Any]) -> list[str]:
    where = f"panel {panel.get('title')!r} target {target.get('refId')}"
    errors: list[str] = []
    for selector in selectors(target.get("expr", "")):
        for label in ("job", "instance", "namespace"):
            matcher = selector.matcher(label)
            if matcher is None or matcher.op != "=~" or matcher.value != f"${label}":
                errors.append(f'target-{label}-rule: {where}: {selector.metric} lacks {label}=~"${label}"')
        if selector.function in {"rate", "irate"} and selector.range != "$__rate_interval":
            errors.append(f"target-rate-interval-rule: {where}: {selector.function} over [{selector.range}]")
        if selector.metric.endswith("_total") and (
            selector.range is None or selector.function not in {"rate", "irate", "increase"}
        ):
            errors.append(f"target-counter-agg-rule: {where}: counter {selector.metric} not in rate/increase")
    return errors


def _panel_errors(panel: dict[str, Any]) -> list[str]:
    kind = panel.get("type")
    title = panel.get("title")
    errors: list[str] = []
    if kind in PANELS_WITH_DATASOURCE and _uid(panel.get("datasource")) not in DATASOURCE_REFS:
        errors.append(f"panel-datasource-rule: panel {title!r} uses {_uid(panel.get('datasource'))!r}")
    if kind in PANELS_WITH_QUERIES:
        if not title or not panel.get("description"):
            errors.append(f"panel-title-description-rule: panel {title!r} lacks a title or description")
        field = panel.get("fieldConfig", {})
        units = [
            prop.get("value")
            for override in field.get("overrides", [])
            for prop in override.get("properties", [])
            if prop.get("id") == "unit"
        ]
        unit = units[-1] if units else field.get("defaults", {}).get("unit", "")
        if unit not in VALID_UNITS:
            errors.append(f"panel-units-rule: panel {title!r} has no or invalid unit {unit!r}")
        if not panel.get("targets"):
            errors.append(f"panel-no-targets-rule: panel {title!r} has no targets")
        for target in panel.get("targets", []):
            if _uid(target.get("datasource", panel.get("datasource"))) not in DATASOURCE_REFS:
                errors.append(f"panel-datasource-rule: panel {title!r} target {target.get('refId')}")
            errors.extend(_target_errors(panel, target))
    return errors


def lint(dashboard: dict[str, Any]) -> list[str]:
    """Every rule violation of one dashboard; an empty list means it passes `dashboard-linter lint --strict`."""
    errors = _template_errors(dashboard)
    if dashboard.get("editable", True):
        errors.append("uneditable-dashboard-rule: the dashboard is editable")
    for panel in _panels(dashboard.get("panels", [])):
        errors.extend(_panel_errors(panel))
    return errors
