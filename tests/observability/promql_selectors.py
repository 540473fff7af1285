"""The vector selectors of a PromQL expression, from a real PromQL parser (promql-parser, Prometheus' grammar).

The checks use them for metric names (every metric is in the contract) and for the dashboard-linter's rules
(matchers on namespace, job and instance; `rate()` over `$__rate_interval`; counters only inside rate/increase).
Grafana variables may appear in label values (plain strings to the parser) and in ranges, which PromQL does not
allow: a range variable is swapped for a placeholder duration before parsing and given back in `Selector.range`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import promql_parser

_MATCH_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}
# A Grafana variable inside [...]: $name or ${name} (with an optional :format).
_RANGE_VARIABLE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::[^}]*)?\}|\$[A-Za-z_][A-Za-z0-9_]*")
_RANGE = re.compile(r"\[[^\]]*\]")
# Placeholders count up from here, in seconds: no real range of these dashboards or rules is near it.
_PLACEHOLDER_BASE = 987_600_000


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    metric: str  # "" when the selector has no metric name
    matchers: tuple[Matcher, ...]
    range: str | None  # the range as written for a variable ("$__rate_interval"), else Prometheus' form ("5m")
    function: str | None  # the innermost function or aggregation applied to it

    def matcher(self, label: str) -> Matcher | None:
        return next((m for m in self.matchers if m.label == label), None)


def _without_range_variables(expr: str) -> tuple[str, dict[float, str]]:
    placeholders: dict[str, float] = {}

    def in_range(match: re.Match[str]) -> str:
        def swap(variable: re.Match[str]) -> str:
            seconds = placeholders.setdefault(variable.group(), _PLACEHOLDER_BASE + len(placeholders))
            return f"{int(seconds)}s"

        return _RANGE_VARIABLE.sub(swap, match.group())

    # Only inside [...] outside strings: a label value such as "[[job]]" or "$job" stays as it is.
    parts = re.split(r'("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`)', expr)
    text = "".join(part if index % 2 else _RANGE.sub(in_range, part) for index, part in enumerate(parts))
    return text, {seconds: variable for variable, seconds in placeholders.items()}


def _range_text(duration: timedelta, variables: dict[float, str]) -> str:
    return variables.get(duration.total_seconds()) or str(promql_parser.display_duration(duration))


def _selector(node: Any, matrix_range: str | None, function: str | None) -> Selector:
    matchers = tuple(Matcher(str(m.name), _MATCH_OPS[str(m.op)], str(m.value)) for m in node.matchers.matchers)
    metric = node.name or next((m.value for m in matchers if m.label == "__name__" and m.op == "="), "")
    return Selector(str(metric), matchers, matrix_range, function)


def _walk(node: Any, function: str | None, variables: dict[float, str]) -> Iterator[Selector]:
    if isinstance(node, promql_parser.VectorSelector):
        yield _selector(node, None, function)
    elif isinstance(node, promql_parser.MatrixSelector):
        yield _selector(node.vector_selector, _range_text(node.range, variables), function)
    elif isinstance(node, promql_parser.Call):
        for argument in node.args:
            yield from _walk(argument, str(node.func.name), variables)
    elif isinstance(node, promql_parser.AggregateExpr):
        if node.param is not None:
            yield from _walk(node.param, str(node.op), variables)
        yield from _walk(node.expr, str(node.op), variables)
    elif isinstance(node, promql_parser.BinaryExpr):
        yield from _walk(node.lhs, function, variables)
        yield from _walk(node.rhs, function, variables)
    elif isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
        yield from _walk(node.expr, function, variables)
    # Number and string literals hold no selector.


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of a PromQL expression, left to right; ValueError when it is not PromQL."""
    text, variables = _without_range_variables(expr)
    try:
        tree = promql_parser.parse(text)
    except ValueError as exc:
        raise ValueError(f"cannot parse PromQL {expr!r}: {exc}") from exc
    return list(_walk(tree, None, variables))
