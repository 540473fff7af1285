"""Error responses as RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import orjson
from aiohttp import web

from ingest_common.email import FieldError
from ingest_common.http_protocol import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_PREFIX, SUPPORTED_CONTENT_CODINGS

# slug -> (status, title); the slug is also the `type` URI's last segment. What the HTTP parser refuses before any
# handler runs has its own slugs (ingest_common.http_protocol.PROTOCOL_PROBLEMS). The `Problem` schema is in
# openapi.json, the statuses clients see in README.md ("The API").
PROBLEMS: Final[Mapping[str, tuple[int, str]]] = {
    "malformed-json": (400, "The request body is not valid JSON"),
    "invalid-payload": (400, "The request payload is invalid"),
    "invalid-header": (400, "A request header is invalid"),
    "unauthorized": (401, "Missing or invalid token"),
    "not-found": (404, "No such resource"),
    "method-not-allowed": (405, "Method not allowed"),
    "payload-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "The request body must be application/json"),
    "unsupported-content-encoding": (415, "The request body's Content-Encoding is not supported"),
    "malformed-body": (400, "The request body cannot be read as sent"),
    "too-many-requests": (429, "This client is over its rate limit; retry later"),
    "internal-error": (500, "Internal error"),
    "service-unavailable": (503, "The service cannot take this request now; retry later"),
}


def problem(
    slug: str,
    *,
    detail: str,
    request_id: str,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    status, title = PROBLEMS[slug]
    document: dict[str, object] = {
        "type": PROBLEM_TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    if errors:
        document["errors"] = [error.as_dict() for error in errors]
    response = web.Response(body=orjson.dumps(document), status=status, headers=headers)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


# RFC 9110, 15.5.16: a 415 for a content coding says which codings are accepted.
ACCEPT_ENCODING_HEADER: Final = {"Accept-Encoding": ", ".join(SUPPORTED_CONTENT_CODINGS)}
