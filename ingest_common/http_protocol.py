"""Requests refused before the application's middleware: answered as problem+json, logged as one JSON line.

aiohttp answers what its parser cannot read itself (a control byte in a header, a header over 8,190 bytes, a bad
request line) with a text/plain body that quotes the offending line, and logs it through `aiohttp.server` with a
traceback that quotes it again. The line can be `Authorization: Bearer <token>` with a stray CR: the token would
be echoed to the client and written to the log in clear. The same goes for the HTTP errors aiohttp raises before
any middleware runs (an `Expect` other than 100-continue: a 417 quoting the header). aiohttp has no setting for
any of it, so this module replaces the methods that do it (`RequestHandler.handle_error`, `log_exception` and, for
HTTP errors that reach it, `finish_response`) in a subclass, installed through the runner. Nothing of the request
is ever written: the status, the error's class and the peer.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

import orjson
import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, ContentEncodingError, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = structlog.get_logger("ingest_common.http_protocol")

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
# The request bodies' content codings the API decodes (aiohttp's parser does); identity is always taken. Others are
# refused with 415 whether or not this Python could decode them (brotli may be installed here and not in the image).
SUPPORTED_CONTENT_CODINGS: Final = ("gzip", "deflate")
PROBLEM_TYPE_PREFIX: Final = "https://email-ingest.dev/problems/"
# slug -> (status, title, detail) of what the parser refuses; the slugs are in the API's OpenAPI document too.
PROTOCOL_PROBLEMS: Final = {
    "malformed-request": (400, "The request is not valid HTTP", "The request line or a header is malformed."),
    "request-header-too-large": (
        431,
        "A request line or header field is too large",
        "The request line or a header field is longer than the server accepts (8190 bytes).",
    ),
    "unsupported-content-encoding": (
        415,
        "The request body's Content-Encoding is not supported",
        "Send the body as identity, gzip or deflate.",
    ),
    "internal-error": (500, "Internal error", "An unexpected error occurred."),
}

RefusalObserver = Callable[[int], None]
"""Told the status of each request the parser refused (the API counts them in its metrics)."""


def protocol_problem_slug(exc: BaseException | None, status: int) -> str:
    if isinstance(exc, LineTooLong):
        return "request-header-too-large"
    if isinstance(exc, ContentEncodingError):  # a coding this Python cannot decode (br, zstd without their module)
        return "unsupported-content-encoding"
    if isinstance(exc, HttpProcessingError) or status < 500:
        return "malformed-request"
    return "internal-error"


def protocol_problem(slug: str, status: int, title: str, detail: str) -> web.Response:
    """A problem+json answer with a fresh request id (none was given: the request never reached the application);
    the connection is closed after it, as aiohttp does after a refusal."""
    request_id = secrets.token_hex(16)
    document = {"type": PROBLEM_TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    response = web.Response(
        status=status,
        body=orjson.dumps({**document, "request_id": request_id}),
        content_type=PROBLEM_CONTENT_TYPE,
        headers={"X-Request-ID": request_id},
    )
    if slug == "unsupported-content-encoding":
        response.headers["Accept-Encoding"] = ", ".join(SUPPORTED_CONTENT_CODINGS)
    response.force_close()
    return response


class ProblemRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering and logging the requests it refuses without quoting them."""

    __slots__ = ("observer",)

    def __init__(self, *args: Any, observer: RefusalObserver | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.observer = observer

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,  # aiohttp's text, which quotes the request: never used
    ) -> web.StreamResponse:
        slug = protocol_problem_slug(exc, status)
        answer_status, title, detail = PROTOCOL_PROBLEMS[slug]
        response = protocol_problem(slug, answer_status, title, detail)
        # A port scanner's or TLS client's first bytes are no HTTP at all: routine, so debug, as aiohttp does.
        level = "debug" if isinstance(exc, BadHttpMethod) else ("error" if answer_status >= 500 else "info")
        self._refused(
            level,
            request,
            response,
            error=type(exc).__name__ if exc is not None else HTTPStatus(status).phrase,
        )
        if request.writer.output_size > 0:  # part of an answer went out already: the connection is broken
            raise ConnectionError("the response had started; the connection is closed")
        return response

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if isinstance(resp, web.HTTPException) and resp.status >= 400:
            # An HTTP error raised before the middleware (the application maps every other one itself).
            phrase = HTTPStatus(resp.status).phrase if resp.status in HTTPStatus._value2member_map_ else "Error"
            resp = protocol_problem(
                phrase.lower().replace(" ", "-"), resp.status, phrase, "The request cannot be served as sent."
            )
            self._refused("info", request, resp, error=phrase)
        return await super().finish_response(request, resp, start_time)

    def _refused(self, level: str, request: BaseRequest, response: web.Response, *, error: str) -> None:
        getattr(log, level)(
            "request_refused",
            status=response.status,
            error=error,
            peer=_peer(request),
            request_id=response.headers["X-Request-ID"],
        )
        if self.observer is not None:
            self.observer(response.status)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's other error lines ("Unhandled exception", ...): the class of the error, never its text."""
        exc_info = kw.get("exc_info")
        error = type(exc_info).__name__ if isinstance(exc_info, BaseException) else None
        log.error("http_protocol_error", message=str(args[0]) if args else None, error=error)


def _peer(request: BaseRequest) -> str | None:
    try:
        return request.remote
    except Exception:  # the transport can be gone already
        return None


class ProblemServer(web.Server):
    observer: RefusalObserver | None = None

    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, observer=self.observer, **self._kwargs)


class ProblemAppRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer parser refusals with problem+json (see the module's docstring)."""

    def __init__(self, app: web.Application, *, observer: RefusalObserver | None = None, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._observer = observer

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The same server (the application's handler, request factory and settings), making our connection
        # handler: aiohttp builds its Server inside Application._make_handler, with no parameter for the class.
        server.__class__ = ProblemServer
        assert isinstance(server, ProblemServer)
        server.observer = self._observer
        return server
