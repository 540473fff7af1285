"""The process row that the API and consumer dashboards share."""

from __future__ import annotations

from observability.dashboards.panels import ORANGE, Row, panel, query
from observability.dashboards.queries import rate, sel


def process_row(what: str) -> Row:
    """CPU and resident memory of each process of a service."""
    return Row(
        "Process",
        (
            panel(
                "CPU",
                f"CPU time used by each {what} process, in cores (1 = one core fully busy).",
                "percentunit",
                (query(f"sum by (instance) ({rate('process_cpu_seconds_total')})", "{{instance}}"),),
                steps=((0.8, ORANGE),),
            ),
            panel(
                "Resident memory",
                f"Resident set size of each {what} process.",
                "bytes",
                (query(f"sum by (instance) ({sel('process_resident_memory_bytes')})", "{{instance}}"),),
            ),
        ),
    )
