"""tests/observability/promql_selectors.py: selectors, matchers, ranges and functions from the PromQL parser."""

from __future__ import annotations

import pytest

from tests.observability.promql_selectors import Matcher, selectors


def test_selectors_find_metrics_matchers_ranges_and_functions() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(d_bucket{job=~"$job", route!~"/healthz|/metrics"}'
        "[$__rate_interval])))\n/ ignoring (reason) group_left\n"
        "sum without (x) (increase(c_total[1h])) or vector(0) unless on (job) {__name__=\"up\", job='a\\'b'} > bool 1"
    )
    found = selectors(expr)
    assert [(s.metric, s.range, s.function) for s in found] == [
        ("d_bucket", "$__rate_interval", "rate"),
        ("c_total", "1h", "increase"),
        ("up", None, None),
    ]
    assert found[0].matchers == (Matcher("job", "=~", "$job"), Matcher("route", "!~", "/healthz|/metrics"))
    assert found[2].matcher("job") == Matcher("job", "=", "a'b")
    assert found[0].matcher("namespace") is None


def test_selectors_reject_text_that_is_not_promql() -> None:
    with pytest.raises(ValueError, match="cannot parse PromQL"):
        selectors("sum(x) ; drop table")


def test_selectors_keep_range_variables_and_leave_label_values_alone() -> None:
    found = selectors('sum(increase(x_total{job=~"[[job]]", route="/a[b]"}[${__range}])) / rate(y[$__interval])')
    assert [(s.metric, s.range, s.function) for s in found] == [
        ("x_total", "${__range}", "increase"),
        ("y", "$__interval", "rate"),
    ]
    assert found[0].matcher("job") == Matcher("job", "=~", "[[job]]")
    assert found[0].matcher("route") == Matcher("route", "=", "/a[b]")
