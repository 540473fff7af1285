"""Request bodies for ``POST /api/email``: valid e-mails with a realistic size spread, and the bad kinds."""

from __future__ import annotations

import json
import math
import random
import string
import time
from typing import Any, Final

from loadtest.settings import ContentSize

REQUIRED_FIELDS: Final = ("email_subject", "email_sender", "email_timestream", "email_content")

_WORDS: Final = (  # noqa: SIM905 - a sentence reads better than a 42-line list
    "invoice meeting quarterly report shipment delayed please review attached contract renewal thanks regards "
    "update schedule customer support ticket urgent follow-up agenda budget approval résumé café naïve "
    "deployment incident postmortem welcome onboarding password reset newsletter offer discount order "
    "confirmation delivery tracking feedback survey"
).split()


def _build_corpus(size: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    length = 0
    while length < size:
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 18))).capitalize() + ". "
        if rng.random() < 0.08:
            sentence += "\n\n"
        parts.append(sentence)
        length += len(sentence)
    return "".join(parts)


# Bodies are slices of one pre-built text, so generating a 200 KiB e-mail costs a slice, not 200 KiB of randomness.
_CORPUS: Final = _build_corpus(2 * 200 * 1024 + 4096)


def content_length(rng: random.Random, size: ContentSize) -> int:
    """A lognormal length (median ``size.median``), clipped to the configured bounds."""
    drawn = rng.lognormvariate(math.log(size.median), size.sigma)
    return max(size.minimum, min(size.maximum, round(drawn)))


def email_content(rng: random.Random, size: ContentSize) -> str:
    length = content_length(rng, size)
    if length > len(_CORPUS):  # only when LOADTEST_CONTENT_MAX_BYTES is raised far above the default
        return (_CORPUS * (length // len(_CORPUS) + 1))[:length]
    start = rng.randrange(0, len(_CORPUS) - length + 1)
    return _CORPUS[start : start + length]


def valid_email(rng: random.Random, size: ContentSize, *, now: float | None = None) -> dict[str, Any]:
    """The ``data`` object of a valid request."""
    current = time.time() if now is None else now
    local = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10)))
    return {
        "email_subject": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 9))).capitalize(),
        "email_sender": f"{local}.{rng.randint(1, 9999)}@example.{rng.choice(('com', 'org', 'net'))}",
        # Up to a week in the past, as mail that sat in a gateway would be.
        "email_timestream": int(current) - rng.randint(0, 7 * 24 * 3600),
        "email_content": email_content(rng, size),
    }


def encode(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def request_body(email: dict[str, Any], token: str) -> bytes:
    return encode({"data": email, "token": token})


def missing_fields_body(rng: random.Random, size: ContentSize, token: str) -> bytes:
    """A request whose ``data`` lacks one or more required fields, or lacks ``data`` altogether (expect 400)."""
    if rng.random() < 0.1:
        return encode({"token": token})
    email = valid_email(rng, size)
    for field in rng.sample(REQUIRED_FIELDS, k=rng.randint(1, len(REQUIRED_FIELDS))):
        del email[field]
    return request_body(email, token)


def malformed_json_body(rng: random.Random, size: ContentSize, token: str) -> bytes:
    """A body that is not JSON (expect 400)."""
    valid = request_body(valid_email(rng, size), token)
    variants: tuple[bytes, ...] = (
        valid[: rng.randint(1, len(valid) - 1)],  # truncated
        valid[:-1] + b",}",  # trailing comma
        valid.replace(b'"', b"'", 4),  # single quotes
        b"email_subject=hello&token=" + token.encode(),  # a form, sent as JSON
        b"",  # empty
    )
    return rng.choice(variants)


def wrong_token(rng: random.Random, token: str) -> str:
    """A token that differs from ``token`` (expect 401)."""
    while True:
        candidate = "".join(rng.choices(string.ascii_letters + string.digits, k=max(16, len(token))))
        if candidate != token:
            return candidate
