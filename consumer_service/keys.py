"""Typed keys for what the consumer's application holds."""

from __future__ import annotations

from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry

from consumer_service.config import ConsumerSettings
from consumer_service.metrics import ConsumerMetrics
from consumer_service.poller import Consumer

SETTINGS: Final = web.AppKey("settings", ConsumerSettings)
REGISTRY: Final = web.AppKey("registry", CollectorRegistry)
METRICS: Final = web.AppKey("metrics", ConsumerMetrics)
CONSUMER: Final = web.AppKey("consumer", Consumer)
