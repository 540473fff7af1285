"""The OpenAPI 3.1 document of the API, generated here and committed as api_service/openapi.json.

Regenerate with `python -m api_service.openapi > api_service/openapi.json`; a test checks they agree.
"""

from __future__ import annotations

import sys
from typing import Any, Final

import orjson

from api_service.config import DEFAULT_MAX_BODY_BYTES
from ingest_common.email import (
    CONTENT_FORBIDDEN_CLASS,
    CONTENT_MAX_BYTES,
    SENDER_MAX_CHARS,
    SINGLE_LINE_FORBIDDEN_CLASS,
    SUBJECT_MAX_CHARS,
    TIMESTREAM_MAX,
    TIMESTREAM_MAX_DIGITS,
    TIMESTREAM_MIN,
    WHITESPACE_CLASS,
)
from ingest_common.http_protocol import SUPPORTED_CONTENT_CODINGS

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_ONE_LINE = (
    "One line: no control characters (C0 but TAB, DEL, C1 such as U+0085), no U+2028 or U+2029; not only whitespace."
)


# The end of the value. Python's `$` (jsonschema's, and hypothesis's when schemathesis generates from a pattern)
# also matches before a final line feed, ECMA 262's only at the end: followed by "no line feed", both mean the end.
_END: Final = "$(?!\\n)"


def ecma_class(characters: str) -> str:
    """A character class's contents (ranges with "-") with every character written as \\uXXXX, which ECMA 262
    regular expressions (OpenAPI's) and Python's read alike."""
    return "".join(char if char == "-" else f"\\u{ord(char):04x}" for char in characters)


def text_pattern(forbidden: str) -> str:
    """No forbidden character, and at least one that is neither forbidden nor whitespace (the server's rules)."""
    allowed = f"[^{ecma_class(forbidden)}]"
    visible = f"[^{ecma_class(forbidden + WHITESPACE_CLASS)}]"
    return f"^{allowed}*{visible}{allowed}*{_END}"


def digit_range_pattern(low: int, high: int, max_digits: int) -> str:
    """Digit strings (leading zeros allowed, at most `max_digits` digits) whose value is from `low` to `high`."""
    alternatives = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        first, last = max(low, 10 ** (digits - 1)), min(high, 10**digits - 1)
        zeros = max_digits - digits
        alternatives.append(f"0{{0,{zeros}}}(?:{_same_length_range(str(first), str(last))})")
    return "^(?:" + "|".join(alternatives) + ")" + _END


def _same_length_range(low: str, high: str) -> str:
    if low == high:
        return low
    if low == "0" * len(low) and high == "9" * len(high):
        return f"[0-9]{{{len(low)}}}"
    if len(low) == 1:
        return f"[{low}-{high}]"
    if low[0] == high[0]:
        return f"{low[0]}(?:{_same_length_range(low[1:], high[1:])})"
    rest = len(low) - 1
    parts = [f"{low[0]}(?:{_same_length_range(low[1:], '9' * rest)})"]
    if int(high[0]) - int(low[0]) > 1:
        parts.append(f"[{int(low[0]) + 1}-{int(high[0]) - 1}][0-9]{{{rest}}}")
    parts.append(f"{high[0]}(?:{_same_length_range('0' * rest, high[1:])})")
    return "|".join(parts)


def _problem_response(
    description: str, *, retry_after: bool = False, extra_headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    if retry_after:
        headers["Retry-After"] = {
            "description": "Seconds to wait before retrying.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    headers.update(extra_headers or {})
    return {
        "description": description,
        "headers": headers,
        "content": {"application/problem+json": {"schema": _PROBLEM_REF}},
    }


def build_document() -> dict[str, Any]:
    one_line = {"type": "string", "minLength": 1, "pattern": text_pattern(SINGLE_LINE_FORBIDDEN_CLASS)}
    email_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["email_subject", "email_sender", "email_timestream", "email_content"],
        "properties": {
            "email_subject": {
                **one_line,
                "maxLength": SUBJECT_MAX_CHARS,
                "description": _ONE_LINE,
            },
            "email_sender": {
                **one_line,
                "maxLength": SENDER_MAX_CHARS,
                "description": _ONE_LINE,
            },
            "email_timestream": {
                "description": (
                    "Unix seconds (years 2000 to 2099), as an integer (an integral number such as 1693561101.0 is "
                    f"one) or a string of at most {TIMESTREAM_MAX_DIGITS} digits, in the same range."
                ),
                "oneOf": [
                    {"type": "integer", "minimum": TIMESTREAM_MIN, "maximum": TIMESTREAM_MAX},
                    {
                        "type": "string",
                        "pattern": digit_range_pattern(TIMESTREAM_MIN, TIMESTREAM_MAX, TIMESTREAM_MAX_DIGITS),
                    },
                ],
            },
            "email_content": {
                "type": "string",
                "minLength": 1,
                # Characters, which bound the bytes from below only: the bytes' limit is in the description.
                "maxLength": CONTENT_MAX_BYTES,
                "pattern": text_pattern(CONTENT_FORBIDDEN_CLASS),
                "description": (
                    f"Text, at most {CONTENT_MAX_BYTES} bytes of UTF-8; no control characters other than TAB, "
                    "LF, FF and CR; not only whitespace."
                ),
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "email-ingest API",
            "version": "1.0.0",
            "description": (
                "Accepts emails and publishes them to SQS; a 200 means SQS has the message.\n\n"
                "Limits are on the fields; the body limit (MAX_BODY_BYTES, default "
                f"{DEFAULT_MAX_BODY_BYTES} bytes) is derived from their worst case, so an email within them "
                "is never refused for its size whatever the client's JSON escaping (every character may be "
                "written as \\uXXXX).\n\n"
                "Retries: a 503 is an email not taken. But when a 503 follows a SendMessageBatch whose answer "
                "was lost, or the client disconnects before its 200, the email may already be queued: a client "
                "that retries should send Idempotency-Key, so the retry maps to the same stored object.\n\n"
                "Clients: each token belongs to one client (the single token is the client `default`); the client's "
                "name is carried with the email and stored with it. A client may have a rate limit: past it the "
                "answer is 429 with Retry-After, another 'not taken'.\n\n"
                "Bodies: JSON, as identity or compressed with Content-Encoding "
                f"{' or '.join(SUPPORTED_CONTENT_CODINGS)} (the limits count the decoded bytes); any other coding is "
                "415. Errors are application/problem+json; of unknown fields the first 20 of each object are listed, "
                "then one entry counts the rest. A method a path does not list gets 405 with Allow; a request the "
                "HTTP parser refuses (a control character in a header, a line over 8190 bytes) gets 400 or 431, "
                "and an Expect other than 100-continue 417, without quoting the request."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": {
            "/api/email": {
                "post": {
                    "operationId": "ingestEmail",
                    "summary": "Accept one email",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": (
                                "The same key yields the same email_id (the same stored object): send one "
                                "whenever a request may be retried."
                            ),
                            # What the server takes: 1 to 255 printable ASCII characters after HTTP strips the
                            # value's surrounding spaces, so at least one that is not a space.
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": 255,
                                "pattern": "^[ -~]*[!-~][ -~]*" + _END,
                            },
                        },
                        {
                            "name": "X-Request-ID",
                            "in": "header",
                            "required": False,
                            "description": "Echoed back; generated when absent or not a safe token.",
                            "schema": {"type": "string"},
                        },
                    ],
                    "security": [{}, {"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["data"],
                                    "properties": {
                                        "data": email_schema,
                                        "token": {
                                            "type": "string",
                                            "description": ("The client's API token, unless sent as a bearer token."),
                                        },
                                    },
                                },
                                "example": {
                                    "data": {
                                        "email_subject": "Happy new year!",
                                        "email_sender": "John doe",
                                        "email_timestream": "1693561101",
                                        "email_content": "Just want to say... Happy new year!!!",
                                    },
                                    "token": "<token>",
                                },
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "SQS accepted the email.",
                            "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
                        },
                        "400": _problem_response(
                            "Malformed JSON, an invalid payload (`errors` names the bad fields), a body that does not "
                            "decode by its Content-Encoding, or a request the HTTP parser refuses."
                        ),
                        "401": _problem_response(
                            "Missing or wrong token.",
                            extra_headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
                        ),
                        "413": _problem_response(
                            f"The body is larger than MAX_BODY_BYTES (default {DEFAULT_MAX_BODY_BYTES}: more than "
                            "any valid email needs in any escaping)."
                        ),
                        "415": _problem_response(
                            "The body is not JSON, or its Content-Encoding is not one the API decodes.",
                            extra_headers={
                                "Accept-Encoding": {
                                    "description": "The codings taken, on a 415 for the Content-Encoding.",
                                    "schema": {"type": "string"},
                                }
                            },
                        ),
                        "417": _problem_response("An Expect header other than 100-continue."),
                        "429": _problem_response(
                            "The client (named by its token) is over its rate limit on the instance that answered "
                            "(RATE_LIMIT_RPS and RATE_LIMIT_BURST, or the client's own). The email was not taken: "
                            "retry after Retry-After seconds.",
                            retry_after=True,
                        ),
                        "431": _problem_response("The request line or a header field is over 8190 bytes."),
                        "503": _problem_response(
                            "The token is not available, SQS is failing, or the service is shedding load (too "
                            "many emails pending, or its memory budget is full). The email was not taken.",
                            retry_after=True,
                        ),
                    },
                }
            },
            "/healthz": {"get": _probe("healthz", "Liveness: the process serves HTTP.")},
            "/health": {"get": _probe("health", "Liveness (alias of /healthz, for load balancers).")},
            "/readyz": {
                "get": {
                    **_probe("readyz", "Readiness: a usable token is held and the publisher runs."),
                    "responses": {
                        "200": _status_response("Ready."),
                        "503": _status_response("Not ready (loading the token, or draining)."),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "Text exposition format.", "content": {"text/plain": {}}}},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1.", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "headers": {
                "X-Request-ID": {
                    "description": "The request's id, also in logs and the SQS message.",
                    "schema": {"type": "string"},
                }
            },
            "schemas": {
                "Accepted": {
                    "type": "object",
                    "required": ["status", "message_id", "email_id"],
                    "properties": {
                        "status": {"const": "success"},
                        "message_id": {"type": "string", "description": "The SQS MessageId."},
                        "email_id": {"type": "string", "description": "The id of the stored object."},
                    },
                },
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details.",
                    "required": ["type", "title", "status", "detail", "request_id"],
                    "properties": {
                        "type": {"type": "string", "format": "uri"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "request_id": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["pointer", "detail"],
                                "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}},
                            },
                        },
                    },
                },
                "Status": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {
                        "status": {"type": "string"},
                        "checks": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    }


def _status_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}},
    }


def _probe(operation_id: str, summary: str) -> dict[str, Any]:
    return {"operationId": operation_id, "summary": summary, "responses": {"200": _status_response("OK.")}}


def render() -> bytes:
    return orjson.dumps(build_document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


if __name__ == "__main__":
    sys.stdout.buffer.write(render())
