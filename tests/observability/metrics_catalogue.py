"""Metric names as docs/contract.md fixes them, and the series a query may use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import yaml

from tests.tooling import REPO_ROOT

CONTRACT = REPO_ROOT / "docs" / "contract.md"
CATALOGUE = REPO_ROOT / "docs" / "metrics.md"
RULE_DIR = REPO_ROOT / "observability" / "alerts"
# Series that are not ours but that the dashboards and alerts use.
FOREIGN = frozenset({"up", "process_cpu_seconds_total", "process_resident_memory_bytes"})
_ROW = re.compile(r"^\|\s*`(?P<name>email_ingest_[a-z0-9_]+)`\s*\|\s*(?P<type>[a-z]+)\s*\|")


@dataclass(frozen=True)
class Metric:
    name: str
    type: str


def table_metrics(text: str) -> dict[str, Metric]:
    """`| `name` | type | ...` rows of the Markdown tables in a document."""
    found: dict[str, Metric] = {}
    for line in text.splitlines():
        match = _ROW.match(line)
        if match:
            found[match.group("name")] = Metric(match.group("name"), match.group("type"))
    return found


@cache
def contract_metrics() -> dict[str, Metric]:
    return table_metrics(CONTRACT.read_text(encoding="utf-8"))


@cache
def recorded_series() -> frozenset[str]:
    names: set[str] = set()
    for path in RULE_DIR.glob("*.rules.yaml"):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return frozenset(names)


def series_names(metric: Metric) -> set[str]:
    if metric.type == "histogram":
        return {f"{metric.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    return {metric.name}


def known_metric(name: str) -> bool:
    """True for a series our services export (per the contract), a recording rule of ours, or `up`/process_*."""
    exported = {series for metric in contract_metrics().values() for series in series_names(metric)}
    return name in exported or name in recorded_series() or name in FOREIGN
