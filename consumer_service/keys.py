"""Typed keys for what the consumer's application holds."""

from __future__ import annotations

from typing import Final

from aiohttp import web
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from consumer_service.config import ConsumerSettings
from consumer_service.consumer import Consumer
from consumer_service.metrics import ConsumerMetrics
from consumer_service.s3_store import ObjectStore
from consumer_service.sqs_queue import Queue

SETTINGS: Final = web.AppKey("settings", ConsumerSettings)
REGISTRY: Final = web.AppKey("registry", CollectorRegistry)
METRICS: Final = web.AppKey("metrics", ConsumerMetrics)
QUEUE: Final = web.AppKey("queue", Queue)
STORE: Final = web.AppKey("store", ObjectStore)
CONSUMER: Final = web.AppKey("consumer", Consumer)
TRACER: Final = web.AppKey("tracer", Tracer)  # present only while tracing is on (ingest_common.tracing)
