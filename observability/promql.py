"""Every PromQL expression of the dashboards and rule files, ready to run against a plain Prometheus.

    python -m observability.promql            # one JSON object per line: source, name, expr, promql

Dashboard variables are replaced by values that select everything on a Prometheus whose series carry only `job`
and `instance`: a query variable becomes its "All" value (`.*` for namespace, `.+` for job and instance),
`$__rate_interval` and `$__interval` become `1m`, `$__range` becomes `1h`. The datasource variable only appears
in datasource fields, never in expressions.

`selectors()` is a small PromQL scanner (not a full parser) that finds the vector selectors of an expression,
their matchers, their range and the function applied to them; the tests use it to check metric names and
the dashboard-linter's rules.
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


# ------------------------------------------------------------------------------------------------------------
# A small PromQL scanner

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)(?:ms|[smhdwy])?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){},@])
    """,
    re.VERBOSE,
)
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_OPERATOR_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
     "quantile", "limitk", "limit_ratio"}
)  # fmt: skip


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    metric: str  # "" when the selector has no metric name
    matchers: tuple[Matcher, ...]
    range: str | None  # the text inside [...], e.g. "$__rate_interval" or "5m"
    function: str | None  # the innermost function or aggregation applied to it

    def matcher(self, label: str) -> Matcher | None:
        return next((m for m in self.matchers if m.label == label), None)


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if not match or match.lastgroup is None:
            raise ValueError(f"cannot scan PromQL at {expr[position : position + 20]!r} in {expr!r}")
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
        position = match.end()
    return tokens


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    if text.startswith("'"):
        text = '"' + text[1:-1].replace("\\'", "'").replace('"', '\\"') + '"'
    return str(json.loads(text))


def _read_selector(tokens: list[tuple[str, str]], index: int, function: str | None) -> tuple[Selector, int]:
    """Reads `metric{matchers}[range]` (metric or matchers optional) starting at tokens[index]."""
    metric = ""
    if tokens[index][0] == "ident":
        metric = tokens[index][1]
        index += 1
    matchers: list[Matcher] = []
    if tokens[index : index + 1] == [("op", "{")]:
        index += 1
        while tokens[index] != ("op", "}"):
            if tokens[index] == ("op", ","):
                index += 1
                continue
            label, op, value = tokens[index][1], tokens[index + 1][1], tokens[index + 2][1]
            matchers.append(Matcher(label, op, _unquote(value)))
            index += 3
        index += 1
    selector_range = None
    if index < len(tokens) and tokens[index][0] == "range":
        selector_range = tokens[index][1][1:-1]
        index += 1
    if not metric:
        metric = next((m.value for m in matchers if m.label == "__name__" and m.op == "="), "")
    return Selector(metric, tuple(matchers), selector_range, function), index


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of a PromQL expression (Grafana variables may stay in strings and ranges)."""
    tokens = _tokens(expr)
    found: list[Selector] = []
    functions: list[str | None] = []  # one entry per open parenthesis
    pending_function: str | None = None
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if kind == "ident" and text in _LABEL_LIST_KEYWORDS:
            index += 1
            if tokens[index : index + 1] == [("op", "(")]:
                index = tokens.index(("op", ")"), index) + 1
        elif kind == "ident" and text in _OPERATOR_KEYWORDS:
            index += 1
        elif kind == "ident" and (following == ("op", "(") or text in _AGGREGATIONS):
            pending_function = text
            index += 1
        elif (kind, text) == ("op", "("):
            functions.append(pending_function)
            pending_function = None
            index += 1
        elif (kind, text) == ("op", ")"):
            functions.pop()
            index += 1
        elif kind == "ident" or (kind, text) == ("op", "{"):
            selector, index = _read_selector(tokens, index, functions[-1] if functions else None)
            found.append(selector)
        else:
            index += 1
    return found


def main() -> int:
    for query in all_queries():
        sys.stdout.write(json.dumps(asdict(query)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
