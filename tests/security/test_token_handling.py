"""The token check: looked up by a keyed MAC only (nothing to learn from its time), and answers that reveal
nothing beyond 'no'."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp

from api_service.clients import DEFAULT_CLIENT, Client
from api_service.token_cache import TokenCache, TokenCheck
from api_service.token_source import ClientParameter, TokenVersion
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


class _Probes(dict[bytes, Any]):
    """The cache's digest table, recording every key it is probed with."""

    def __init__(self, table: dict[bytes, Any]) -> None:
        super().__init__(table)
        self.probes: list[object] = []

    def get(self, key: Any, default: Any = None) -> Any:
        self.probes.append(key)
        return super().get(key, default)


class _History:
    """Every value written one after the other just now, so that all are inside the grace period; and clients
    under the path with one version each."""

    def __init__(self, values: list[str], path: dict[str, str]) -> None:
        now = datetime.now(UTC)
        self.history = [TokenVersion(number, value, now) for number, value in enumerate(values, start=1)]
        self.path = {name: [TokenVersion(1, value, now)] for name, value in path.items()}

    async def clients(self) -> list[ClientParameter]:
        single = [ClientParameter(DEFAULT_CLIENT, self.history, single=True)]
        return single + [ClientParameter(name, versions) for name, versions in sorted(self.path.items())]


async def _cache(values: list[str], clients: int = 0) -> tuple[TokenCache, _Probes]:
    source = _History(values, {f"client{index}": f"token-of-client-{index}" for index in range(clients)})
    cache = TokenCache(source, refresh_seconds=300, max_staleness_seconds=3600, rotation_grace_seconds=300)
    assert await cache.refresh()
    probes = cache._held.tokens = _Probes(cache._held.tokens)
    return cache, probes


async def test_unit_the_lookup_sees_only_keyed_digests() -> None:
    cache, probes = await _cache([SECRET])
    for presented in PRESENTED:
        probes.probes.clear()
        verdict = cache.check(presented)
        assert verdict == (Client(DEFAULT_CLIENT) if presented == SECRET else TokenCheck.INVALID)
        assert len(probes.probes) == 1, presented[:20]
        (key,) = probes.probes
        assert type(key) is bytes and len(key) == 32  # a BLAKE2b MAC, whatever was presented
        assert SECRET.encode() not in key
    assert all(len(key) == 32 and SECRET.encode() not in key for key in probes)


async def test_unit_one_probe_whatever_the_clients_and_versions_held() -> None:
    """The work per check does not grow with the clients held (nor say how many there are, or which one
    matched): one MAC, one probe of the table, during a rotation too."""
    for clients in (0, 1, 50):
        cache, probes = await _cache([SECRET, SECRET + "-next"], clients)
        assert cache.kept_versions == 2 + clients
        for presented in [*PRESENTED, SECRET + "-next", "token-of-client-0"]:
            probes.probes.clear()
            verdict = cache.check(presented)
            if presented in {SECRET, SECRET + "-next"}:
                assert verdict == Client(DEFAULT_CLIENT)
            elif presented == "token-of-client-0" and clients:
                assert verdict == Client("client0")
            else:
                assert verdict is TokenCheck.INVALID
            assert len(probes.probes) == 1


async def test_unit_the_digest_key_is_per_process_and_secret_free() -> None:
    (first, _), (second, _) = await _cache([SECRET]), await _cache([SECRET])
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
