"""The token check: constant-time in the presented token, and answers that reveal nothing beyond 'no'."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from api_service import token_cache as token_cache_module
from api_service.token_cache import TokenCache, TokenCheck
from api_service.token_source import TokenVersion
from devstack.faultproxy import Mode
from devstack.processes import http_status
from tests.reliability.harness import FaultyPipeline
from tests.security.conftest import TOKEN_MAX_STALENESS_SECONDS

SECRET = "s3cr3t-token-value"
PRESENTED = [
    "",
    "x",
    SECRET[:-1],
    SECRET + "x",
    "x" * len(SECRET),
    "é" * 1000,
    "x" * 300_000,
    "\ud800",  # a lone surrogate (JSON can carry one)
    SECRET,
]


class _Spy:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self._real: Callable[[Any, Any], bool] = hmac.compare_digest

    def __call__(self, left: Any, right: Any) -> bool:
        self.calls.append((left, right))
        return self._real(left, right)


class _History:
    """Every value written one after the other just now, so that all are inside the grace period."""

    def __init__(self, values: list[str]) -> None:
        now = datetime.now(UTC)
        self.history = [TokenVersion(number, value, now) for number, value in enumerate(values, start=1)]

    async def versions(self) -> list[TokenVersion]:
        return self.history


async def _cache(values: list[str]) -> TokenCache:
    cache = TokenCache(_History(values), refresh_seconds=300, max_staleness_seconds=3600, rotation_grace_seconds=300)
    assert await cache.refresh()
    return cache


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> _Spy:
    spy = _Spy()
    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module calls hmac.compare_digest at run time
    assert token_cache_module.hmac is hmac  # type: ignore[attr-defined]
    return spy


async def test_unit_comparison_sees_only_equal_length_digests(spy: _Spy) -> None:
    cache = await _cache([SECRET])
    for presented in PRESENTED:
        spy.calls.clear()
        verdict = cache.check(presented)
        assert verdict is (TokenCheck.VALID if presented == SECRET else TokenCheck.INVALID)
        assert len(spy.calls) == 1, presented[:20]
        left, right = spy.calls[0]
        assert type(left) is bytes and type(right) is bytes
        assert len(left) == len(right) == 32  # HMAC-SHA256 digests, whatever was presented
        assert SECRET.encode() not in left + right


async def test_unit_during_a_rotation_both_tokens_are_always_compared(spy: _Spy) -> None:
    cache = await _cache([SECRET, SECRET + "-next"])
    for presented in [*PRESENTED, SECRET + "-next"]:
        spy.calls.clear()
        verdict = cache.check(presented)
        assert verdict is (TokenCheck.VALID if presented in {SECRET, SECRET + "-next"} else TokenCheck.INVALID)
        # No short cut: a match on the current token does not skip the previous one, or the reverse.
        assert len(spy.calls) == 2, presented[:20]
        assert all(len(left) == len(right) == 32 for left, right in spy.calls)


async def test_unit_the_digest_key_is_per_process_and_secret_free(spy: _Spy) -> None:
    first, second = await _cache([SECRET]), await _cache([SECRET])
    assert first._digest(SECRET) != second._digest(SECRET)  # a digest from one pod is useless against another
    assert SECRET.encode() not in first._digest(SECRET)


def _problem_shape(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "request_id"}


async def _post(url: str, *, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        return response.status, json.loads(await response.read()), dict(response.headers)


def _variants(token: str) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    data = {
        "email_subject": "s",
        "email_sender": "a@example.com",
        "email_timestream": 1693561101,
        "email_content": "c",
    }
    return {
        "missing": ({"data": data}, {}),
        "wrong_in_body": ({"data": data, "token": token + "x"}, {}),
        "prefix_in_body": ({"data": data, "token": token[:-1]}, {}),
        "wrong_type_in_body": ({"data": data, "token": 12345}, {}),
        "empty_in_body": ({"data": data, "token": ""}, {}),
        "long_in_body": ({"data": data, "token": "x" * 100_000}, {}),
        "bearer_wrong": ({"data": data}, {"Authorization": "Bearer " + token + "x"}),
        "bearer_empty": ({"data": data}, {"Authorization": "Bearer "}),
        "basic_scheme": ({"data": data}, {"Authorization": "Basic " + token}),
    }


def _ask_all(pipeline: FaultyPipeline, token: str) -> dict[str, tuple[int, dict[str, Any], dict[str, str]]]:
    async def run() -> dict[str, tuple[int, dict[str, Any], dict[str, str]]]:
        answers = {}
        for name, (document, headers) in _variants(token).items():
            answers[name] = await _post(
                f"{pipeline.api_url}/api/email",
                body=json.dumps(document).encode(),
                headers={"Content-Type": "application/json", **headers},
            )
        return answers

    return asyncio.run(run())


def test_every_401_is_the_same_answer(pipeline: FaultyPipeline) -> None:
    answers = _ask_all(pipeline, pipeline.token)
    shapes = {name: _problem_shape(body) for name, (_, body, _) in answers.items()}
    assert {name: status for name, (status, _, _) in answers.items()} == dict.fromkeys(answers, 401)
    reference = shapes["missing"]
    assert reference["type"].endswith("/unauthorized")
    assert all(shape == reference for shape in shapes.values()), shapes
    challenges = {headers.get("WWW-Authenticate") for _, _, headers in answers.values()}
    assert challenges == {'Bearer realm="email-ingest"'}


def test_every_503_while_the_token_is_unavailable_is_the_same_answer(pipeline: FaultyPipeline) -> None:
    proxy = pipeline.proxies["ssm"]
    proxy.set_mode(Mode.REFUSE)
    try:
        time.sleep(TOKEN_MAX_STALENESS_SECONDS + 1.5)
        answers = _ask_all(pipeline, pipeline.token)
        data = _variants(pipeline.token)["missing"][0]
        answers["right_token"] = asyncio.run(
            _post(
                f"{pipeline.api_url}/api/email",
                body=json.dumps({**data, "token": pipeline.token}).encode(),
                headers={"Content-Type": "application/json"},
            )
        )
    finally:
        proxy.set_mode(Mode.PASS)
    assert {name: status for name, (status, _, _) in answers.items()} == dict.fromkeys(answers, 503)
    shapes = {name: _problem_shape(body) for name, (_, body, _) in answers.items()}
    reference = shapes["right_token"]
    assert reference["type"].endswith("/service-unavailable")
    assert all(shape == reference for shape in shapes.values()), shapes
    assert {headers.get("Retry-After") for _, _, headers in answers.values()} == {"5"}
    assert all("WWW-Authenticate" not in headers for _, _, headers in answers.values())
    deadline = time.monotonic() + 10
    while http_status(f"{pipeline.api_url}/readyz") != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert http_status(f"{pipeline.api_url}/readyz") == 200
