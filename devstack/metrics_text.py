"""Reading a service's /metrics page (Prometheus text exposition), for the bench and the tests."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families


def scrape(base_url: str, timeout: float = 10.0) -> str:
    """The text of `<base_url>/metrics`."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=timeout) as response:  # noqa: S310 - loopback
        return str(response.read().decode())


def metric_value(metrics_text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                total += sample.value
    return total
