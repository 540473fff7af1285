"""Typed keys for what the API application holds."""

from __future__ import annotations

from typing import Final

from aiohttp import web
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from api_service.config import ApiSettings
from api_service.ids import RandomIds
from api_service.lifecycle import Lifecycle
from api_service.memory_budget import MemoryBudget
from api_service.metrics import ApiMetrics
from api_service.publisher import BatchPublisher
from api_service.rate_limit import RateLimiter
from api_service.sqs.queue import SendQueue
from api_service.token_cache import TokenCache, TokenSource
from ingest_common.logging import AccessLog

SETTINGS: Final = web.AppKey("settings", ApiSettings)
REGISTRY: Final = web.AppKey("registry", CollectorRegistry)
METRICS: Final = web.AppKey("metrics", ApiMetrics)
QUEUE: Final = web.AppKey("queue", SendQueue)
TOKEN_SOURCE: Final = web.AppKey("token_source", TokenSource)
TOKEN_CACHE: Final = web.AppKey("token_cache", TokenCache)
PUBLISHER: Final = web.AppKey("publisher", BatchPublisher)
MEMORY_BUDGET: Final = web.AppKey("memory_budget", MemoryBudget)
LIFECYCLE: Final = web.AppKey("lifecycle", Lifecycle)
OPENAPI_DOCUMENT: Final = web.AppKey("openapi_document", bytes)
RANDOM_IDS: Final = web.AppKey("random_ids", RandomIds)
ACCESS_LOG: Final = web.AppKey("access_log", AccessLog)
RATE_LIMITER: Final = web.AppKey("rate_limiter", RateLimiter)

REQUEST_ID: Final = web.RequestKey("request_id", str)  # set by the middleware
CLIENT: Final = web.RequestKey("client", str)  # the authenticated client's name, set by the handler
TRACER: Final = web.AppKey("tracer", Tracer)  # present only while tracing is on (ingest_common.tracing)
