"""What the locust test runs share: the stub's token, the environment of a short run, the request names."""

from __future__ import annotations

TOKEN = "stub-token-0123456789"
# Many requests of every kind in a short run: short waits and large shares of the bad kinds.
BASE_ENV = {
    "LOADTEST_TOKEN": TOKEN,
    "LOADTEST_WAIT_MIN_SECONDS": "0.01",
    "LOADTEST_WAIT_MAX_SECONDS": "0.05",
    "LOADTEST_BAD_TOKEN_SHARE": "0.1",
    "LOADTEST_MISSING_FIELDS_SHARE": "0.1",
    "LOADTEST_MALFORMED_JSON_SHARE": "0.1",
    "LOADTEST_RETRY_SHARE": "0.2",
    "LOADTEST_CONTENT_MAX_BYTES": "65536",
}
ALL_NAMES = {
    "POST /api/email",
    "POST /api/email [bad token]",
    "POST /api/email [missing fields]",
    "POST /api/email [malformed json]",
    "POST /api/email [idempotent]",
    "POST /api/email [idempotent retry]",
}
