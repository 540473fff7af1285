"""Every PromQL expression of the dashboards and rule files, ready to run against a plain Prometheus.

    python -m observability.promql            # one JSON object per line: source, name, expr, promql

Dashboard variables are replaced by values that select everything on a Prometheus whose series carry only `job`
and `instance`: a query variable becomes its "All" value (`.*` for namespace, `.+` for job and instance),
`$__rate_interval` and `$__interval` become `1m`, `$__range` becomes `1h`. The datasource variable only appears
in datasource fields, never in expressions.

The checks of these expressions (metric names, the dashboard-linter's rules) parse them with a real PromQL
parser: tests/observability/promql_selectors.py.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent
DASHBOARD_DIR = ROOT / "dashboards"
ALERTS_DIR = ROOT / "alerts"

# Grafana's global variables, as a plain Prometheus query needs them.
BUILTIN_VALUES: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
}

_VARIABLE = re.compile(
    r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|\[\[(?P<old>[A-Za-z_][A-Za-z0-9_]*)\]\]"
)


@dataclass(frozen=True)
class Query:
    source: str  # file, relative to the repository
    name: str  # where in the file: a dashboard panel and target, or a rule
    expr: str  # as written
    promql: str  # ready to run: variables substituted


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replaces `$var`, `${var}`, `${var:format}` and `[[var]]`; an unknown variable is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain") or match.group("old")
        if name not in values:
            raise KeyError(f"no value for variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def variable_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Values for a dashboard's variables that match everything: the "All" value, else the current value."""
    values = dict(BUILTIN_VALUES)
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable.get("type") == "datasource":
            continue
        if variable.get("includeAll"):
            values[name] = variable.get("allValue") or ".*"
        else:
            current = variable.get("current", {}).get("value")
            if not isinstance(current, str) or not current:
                raise ValueError(f"variable {name} has neither an All value nor a current value")
            values[name] = current
    return values


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries(path: Path) -> list[Query]:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    values = variable_values(dashboard)
    source = _relative(path)
    queries = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                name = f"panel {panel.get('title')!r} target {target.get('refId')}"
                queries.append(Query(source, name, expr, substitute(expr, values)))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"] if isinstance(variable["query"], str) else variable["query"]["query"]
        # label_values(<selector>, <label>): the selector is the PromQL part.
        match = re.fullmatch(r"label_values\((?P<selector>.+),\s*[A-Za-z_][A-Za-z0-9_]*\)", query.strip())
        if match:
            selector = match.group("selector")
            queries.append(Query(source, f"variable {variable['name']}", selector, substitute(selector, values)))
    return queries


def rule_queries(path: Path) -> list[Query]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    source = _relative(path)
    queries = []
    for group in document.get("groups", []):
        for rule in group.get("rules", []):
            kind, name = ("alert", rule["alert"]) if "alert" in rule else ("record", rule["record"])
            expr = str(rule["expr"]).strip()
            queries.append(Query(source, f"{group['name']} {kind} {name}", expr, expr))
    return queries


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def rule_files() -> list[Path]:
    return sorted(ALERTS_DIR.glob("*.rules.yaml"))


def all_queries() -> list[Query]:
    """Every expression of every committed dashboard and rule file."""
    queries: list[Query] = []
    for path in dashboard_files():
        queries.extend(dashboard_queries(path))
    for path in rule_files():
        queries.extend(rule_queries(path))
    return queries


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT.parent))
    except ValueError:
        return str(path)


def main() -> int:
    for query in all_queries():
        sys.stdout.write(json.dumps(asdict(query)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
