"""One middleware for every request: request id, metrics and the access log line (with the client, once the
handler knows it), and error mapping."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Final

import structlog
from aiohttp import web
from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from api_service.clients import UNAUTHENTICATED
from api_service.keys import ACCESS_LOG, CLIENT, METRICS, RANDOM_IDS, REQUEST_ID, TRACER
from api_service.problems import problem
from ingest_common.tracing import exemplar, http_traceparent

log = structlog.get_logger("api_service.middleware")

_REQUEST_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_KNOWN_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_LOGGED_PATH_MAX: Final = 200
_CLIENT_CLOSED_REQUEST: Final = 499

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_id_for(request: web.Request) -> str:
    """The caller's X-Request-ID when it is a safe token; otherwise a new one (never log raw input)."""
    supplied = request.headers.get("X-Request-ID")
    if supplied is not None and _REQUEST_ID_PATTERN.fullmatch(supplied):
        return supplied
    return request.app[RANDOM_IDS].hex()


def _problem_for(exc: web.HTTPException, request: web.Request, request_id: str) -> web.Response:
    metrics = request.app[METRICS]
    if isinstance(exc, web.HTTPMethodNotAllowed):
        metrics.reject("method_not_allowed")
        return problem(
            "method-not-allowed",
            detail=f"{request.method} is not allowed here; use {', '.join(sorted(exc.allowed_methods))}.",
            request_id=request_id,
            headers={"Allow": ", ".join(sorted(exc.allowed_methods))},
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        metrics.reject("too_large")
        return problem("payload-too-large", detail="The body is too large.", request_id=request_id)
    if isinstance(exc, web.HTTPNotFound):
        metrics.reject("not_found")
        return problem("not-found", detail="No such resource.", request_id=request_id)
    raise exc


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    tracer = request.app.get(TRACER)
    if tracer is None:  # tracing off: nothing more than this lookup
        return await _observe(request, handler, None)
    span = _server_span(tracer, request)
    token = context.attach(trace.set_span_in_context(span))
    try:
        return await _observe(request, handler, span)
    finally:
        context.detach(token)
        span.end()


def _server_span(tracer: Tracer, request: web.Request) -> Span:
    """A server span with the HTTP semantic conventions, continuing the caller's trace when it sent a traceparent."""
    route = _route(request)
    method = request.method if request.method in _KNOWN_METHODS else "_OTHER"
    return tracer.start_span(
        f"{method} {route}" if route != "unmatched" else method,
        context=http_traceparent(request.headers),
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": method,
            "http.route": route,
            "url.path": request.path[:_LOGGED_PATH_MAX],
            "url.scheme": request.scheme,
        },
    )


async def _observe(request: web.Request, handler: Handler, span: Span | None) -> web.StreamResponse:
    started = time.perf_counter()
    request_id = request_id_for(request)
    request[REQUEST_ID] = request_id
    metrics = request.app[METRICS]
    metrics.requests_in_flight += 1
    status = 500
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = _problem_for(exc, request, request_id)
        except Exception as exc:
            if isinstance(exc, ConnectionResetError) and _client_gone(request):
                # The client hung up mid-upload: aiohttp 3.14 raises this from request.read() (earlier versions
                # cancelled the handler, below). Nobody is left to answer and it is no server error: a 499, one line.
                log.info("client_closed_request", path=request.path[:_LOGGED_PATH_MAX], request_id=request_id)
                response = web.Response(status=_CLIENT_CLOSED_REQUEST)
            else:
                log.exception("request_failed", path=request.path[:_LOGGED_PATH_MAX], request_id=request_id)
                response = problem("internal-error", detail="An unexpected error occurred.", request_id=request_id)
    except web.HTTPException as exc:  # statuses we do not map go out as aiohttp made them
        status = exc.status
        raise
    except asyncio.CancelledError:
        # The client went away mid-request (aiohttp cancels the read): nginx's 499, not a server error,
        # so a client that hangs up does not raise the 5xx ratio the alerts watch.
        status = _CLIENT_CLOSED_REQUEST
        raise
    else:
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        metrics.requests_in_flight -= 1
        elapsed = time.perf_counter() - started
        route = _route(request)
        method = request.method if request.method in _KNOWN_METHODS else "OTHER"
        client = request.get(CLIENT, UNAUTHENTICATED)
        if span is None:
            metrics.observe(route, method, status, elapsed, client=client)
        else:
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("email_ingest.request_id", request_id)
            if status >= 500:  # the server's failures; a 4xx is the client's (the HTTP conventions' rule)
                span.set_status(Status(StatusCode.ERROR))
            metrics.observe(route, method, status, elapsed, client=client, exemplar=exemplar())
        request.app[ACCESS_LOG].request(
            method=method,
            path=request.path[:_LOGGED_PATH_MAX],
            status=status,
            duration_ms=round(elapsed * 1000, 3),
            request_id=request_id,
            client=client,
        )
