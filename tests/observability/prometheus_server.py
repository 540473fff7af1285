"""A real Prometheus for the tests: started on 127.0.0.1 with its own data folder, scraping given ports.

Used by test_queries_on_prometheus.py (synthetic servers) and test_live_stack.py (the real services).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from devstack.processes import ProcessFailed
from observability.observe import PrometheusServer
from observability.prometheus_config import render
from tests.tooling import require_tool

EMAIL_INGEST_JOBS = 'job=~"email-ingest-api|email-ingest-consumer"'


@contextmanager
def running_prometheus(
    api_port: int, consumer_port: int, workdir: Path, *, scrape_interval: str = "1s"
) -> Iterator[PrometheusServer]:
    """Prometheus scraping the API and the consumer ports and loading the alert rules; stopped on exit."""
    binary = require_tool("prometheus")
    server = PrometheusServer(binary, render(api_port, consumer_port, scrape_interval=scrape_interval), workdir)
    try:
        server.start()
    except ProcessFailed as exc:
        pytest.fail(f"prometheus did not start: {exc}")
    try:
        yield server
    finally:
        server.stop()


def result(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The samples of a successful instant query (empty for any other answer)."""
    if answer.get("status") != "success":
        return []
    samples: list[dict[str, Any]] = answer["data"]["result"]
    return samples


def wait_for_query(
    prometheus: PrometheusServer,
    promql: str,
    accept: Callable[[list[dict[str, Any]]], bool],
    *,
    timeout: float = 60.0,
    what: str = "",
) -> list[dict[str, Any]]:
    """Polls an instant query until `accept(samples)`; fails the test with Prometheus's log otherwise."""
    deadline = time.monotonic() + timeout
    answer: dict[str, Any] = {}
    while True:
        if not prometheus.running():
            pytest.fail(f"prometheus exited:\n{prometheus.log_text()[-4000:]}")
        try:
            answer = prometheus.query(promql)
        except OSError:
            answer = {}
        samples = result(answer)
        if answer.get("status") == "success" and accept(samples):
            return samples
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout} s waiting for {what or promql}\nlast answer: {answer}\n"
                f"--- prometheus log\n{prometheus.log_text()[-4000:]}"
            )
        time.sleep(0.25)


def wait_for_scrapes(prometheus: PrometheusServer, count: int, *, timeout: float = 60.0) -> None:
    """Until both email-ingest targets are up and were scraped successfully `count` times within the last minute
    (Prometheus may have started before them)."""
    wait_for_query(
        prometheus,
        f"sum_over_time(up{{{EMAIL_INGEST_JOBS}}}[1m]) >= {count} and up{{{EMAIL_INGEST_JOBS}}} == 1",
        lambda samples: len(samples) == 2,
        timeout=timeout,
        what=f"{count} successful scrapes of both targets",
    )


def wait_for_scrapes_after(prometheus: PrometheusServer, since: float, count: int, *, timeout: float = 60.0) -> None:
    """Until both targets were scraped at least `count` times after the Unix time `since` (with a 1 s scrape
    interval: until the latest scrape of each is more than `count` seconds after `since`)."""
    wait_for_query(
        prometheus,
        f"timestamp(up{{{EMAIL_INGEST_JOBS}}}) > {since + count:.3f}",
        lambda samples: len(samples) == 2,
        timeout=timeout,
        what=f"{count} scrapes of both targets after {since:.3f}",
    )
