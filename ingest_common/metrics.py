"""A private Prometheus registry per service and the /metrics handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from ingest_common import __version__


def new_registry(service: str) -> CollectorRegistry:
    """A registry of our own (never the library's global one) with process and build information."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    build_info = Gauge(
        "email_ingest_build_info", "Build information; always 1.", ["service", "version"], registry=registry
    )
    build_info.labels(service, __version__).set(1)
    return registry


def metrics_handler(registry: CollectorRegistry) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The Prometheus text format, or OpenMetrics when the scraper's Accept asks for it: only OpenMetrics carries
    the histograms' exemplars (the trace of an observation), so a Prometheus with exemplar storage gets them."""

    async def handle_metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(registry), headers={"Content-Type": content_type})

    return handle_metrics
