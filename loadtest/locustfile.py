"""Load scenarios for ``POST /api/email`` (see loadtest/README.md for the commands and every variable).

Each request is one of (shares from ``LOADTEST_*_SHARE``):

* a valid e-mail (content size lognormal around 2 KiB, capped at 200 KiB): expects 200 with an ``email_id``;
* a wrong token: expects 401; missing fields: expects 400; malformed JSON: expects 400. These count as
  successes when the expected status arrives, as failures otherwise;
* an idempotent retry: the same body twice with one ``Idempotency-Key``; the retry must return the same
  ``email_id`` (a mismatch is a failure).

Any ``503`` with ``Retry-After`` is recorded under the name ``shed`` (not a failure; see
``LOADTEST_MAX_SHED_RATE``), any ``429`` with ``Retry-After`` (the token's client over its rate limit) under
``rate_limited`` (not a failure either). ``LOADTEST_SHAPE`` picks a load shape; thresholds set the exit code.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

# locust imports this file as a top-level module; make the `loadtest` package importable from any working dir.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

# The web UI binds 0.0.0.0:8089 by default; keep it on loopback unless told otherwise (--web-host).
os.environ.setdefault("LOCUST_WEB_HOST", "127.0.0.1")

from locust import FastHttpUser, LoadTestShape, between, task  # noqa: E402

from loadtest import check_thresholds, payloads, shapes  # noqa: E402
from loadtest.settings import ContentSize, ScenarioMix, env_float  # noqa: E402
from loadtest.thresholds import (  # noqa: E402
    ACCEPT,
    ACCEPT_IDEMPOTENT,
    BAD_TOKEN,
    MALFORMED_JSON,
    MISSING_FIELDS,
    RATE_LIMITED,
    RETRY_IDEMPOTENT,
    SHED,
)

logger = logging.getLogger("loadtest")

PATH: Final = "/api/email"
TOKEN: Final = os.environ.get("LOADTEST_TOKEN", "")
if not TOKEN:
    raise SystemExit("LOADTEST_TOKEN is not set: export the API token the target accepts")
MIX: Final = ScenarioMix.from_env()
CONTENT_SIZE: Final = ContentSize.from_env()
WAIT_MIN_SECONDS: Final = env_float("LOADTEST_WAIT_MIN_SECONDS", 0.1)
WAIT_MAX_SECONDS: Final = env_float("LOADTEST_WAIT_MAX_SECONDS", 0.5, minimum=WAIT_MIN_SECONDS)

# The load shape selected by LOADTEST_SHAPE; locust picks up any shape class bound at module level.
LoadShape: type[LoadTestShape] | None = shapes.shape_from_env()

check_thresholds.register()


@dataclass(frozen=True)
class Outcome:
    ok: bool
    shed: bool = False
    rate_limited: bool = False
    email_id: str | None = None


def _json_body(response: Any) -> object:
    """The parsed body, or None. Parses the bytes: ``response.json()`` guesses the charset of +json types."""
    content = response.content
    if not content:
        return None
    try:
        document: object = json.loads(content)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return None
    return document


def _problem_title(response: Any) -> str:
    """The ``title`` of a problem+json body, if any: low-cardinality, unlike the body (it holds a request id)."""
    document = _json_body(response)
    title = document.get("title") if isinstance(document, dict) else None
    return f" ({title})" if isinstance(title, str) and len(title) <= 80 else ""


class EmailClient(FastHttpUser):
    """A mail gateway posting e-mails to the API."""

    wait_time = between(WAIT_MIN_SECONDS, WAIT_MAX_SECONDS)
    network_timeout = env_float("LOADTEST_TIMEOUT_SECONDS", 30.0, minimum=0.1)
    connection_timeout = env_float("LOADTEST_CONNECT_TIMEOUT_SECONDS", 5.0, minimum=0.1)

    def on_start(self) -> None:
        self.rng = random.Random()

    @task
    def post_email(self) -> None:
        draw = self.rng.random()
        limit = MIX.bad_token
        if draw < limit:
            body = payloads.request_body(
                payloads.valid_email(self.rng, CONTENT_SIZE), payloads.wrong_token(self.rng, TOKEN)
            )
            self._post(BAD_TOKEN, body, expected_status=401)
            return
        limit += MIX.missing_fields
        if draw < limit:
            self._post(MISSING_FIELDS, payloads.missing_fields_body(self.rng, CONTENT_SIZE, TOKEN), 400)
            return
        limit += MIX.malformed_json
        if draw < limit:
            self._post(MALFORMED_JSON, payloads.malformed_json_body(self.rng, CONTENT_SIZE, TOKEN), 400)
            return
        limit += MIX.idempotent_retry
        body = payloads.request_body(payloads.valid_email(self.rng, CONTENT_SIZE), TOKEN)
        # Every email carries a key, as a client that may retry should: a 503 or a lost answer can come
        # after SQS took the email, and only the key makes the retry land on the same stored object.
        key = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if draw < limit:
            first = self._post(ACCEPT_IDEMPOTENT, body, 200, idempotency_key=key)
            # A client retries after a lost answer, a timeout or a 503: the key makes it safe.
            self._post(RETRY_IDEMPOTENT, body, 200, idempotency_key=key, same_email_id_as=first.email_id)
            return
        self._post(ACCEPT, body, 200, idempotency_key=key)

    def _post(
        self,
        name: str,
        body: bytes,
        expected_status: int,
        *,
        idempotency_key: str | None = None,
        same_email_id_as: str | None = None,
    ) -> Outcome:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        response: Any
        # data: locust's annotation says str, its docs and geventhttpclient take bytes (no re-encoding).
        with self.client.post(
            PATH,
            data=body,  # type: ignore[arg-type]
            headers=headers,
            name=name,
            catch_response=True,
        ) as response:
            return _judge(response, expected_status, same_email_id_as)


def _judge(response: Any, expected_status: int, same_email_id_as: str | None) -> Outcome:
    """Marks ``response`` (a locust ResponseContextManager) as success or failure and says what happened."""
    status: int = response.status_code
    if status == 503 and response.headers is not None and response.headers.get("Retry-After"):
        response.request_meta["name"] = SHED
        response.success()
        return Outcome(ok=False, shed=True)
    if status == 429 and response.headers is not None and response.headers.get("Retry-After"):
        response.request_meta["name"] = RATE_LIMITED
        response.success()
        return Outcome(ok=False, rate_limited=True)
    # Failure messages are locust's error-table keys: keep them free of ids so that equal causes group together.
    if status != expected_status:
        error = getattr(response, "error", None)
        if status == 0:
            response.failure(f"no response: {type(error).__name__ if error else 'connection error'}")
        else:
            response.failure(f"expected {expected_status}, got {status}{_problem_title(response)}")
        return Outcome(ok=False)
    if expected_status != 200:
        response.success()
        return Outcome(ok=True)
    document = _json_body(response)
    email_id = document.get("email_id") if isinstance(document, dict) else None
    if not isinstance(email_id, str) or not email_id:
        response.failure("200 without an email_id")
        return Outcome(ok=False)
    if same_email_id_as is not None and email_id != same_email_id_as:
        logger.warning("idempotent retry got email_id %s, the first answer had %s", email_id, same_email_id_as)
        response.failure("email_id mismatch on an idempotent retry")
        return Outcome(ok=False, email_id=email_id)
    response.success()
    return Outcome(ok=True, email_id=email_id)
