"""Every dashboard and rule expression against a real Prometheus scraping the real services.

The local stack (moto, the API and the consumer as processes) runs with a Prometheus that scrapes both every
second and evaluates the alert rules every second. Real traffic goes through it, errors included: 200s, 400
(malformed JSON, invalid payload), 401, 413, 415, 405, 404, load shedding (503 `queue_full`, provoked with
PUBLISH_MAX_PENDING=2 and a 200 ms linger, so that a burst of concurrent requests overflows the publisher), and a
poison message put straight on the queue, which the redrive policy moves to the DLQ. Then each expression of
observability.promql.all_queries() goes to /api/v1/query:

- every expression must succeed (no parse error, no many-to-many matching, no unknown function);
- every dashboard query must return data (the panels would show "No data" otherwise);
- for a rule expression, its operands must return data too. Most alert expressions are comparisons (`A > 0.01`,
  `A > x and B > y`, `A > 0 unless on (...) B > 0`) that rightly return nothing on healthy series, so "it returned
  nothing" proves nothing about them: a misspelt metric or label would look the same. The test therefore splits
  each rule expression at its set operators (`or`, `and`, `unless`) and comparison operators, outside parentheses
  and strings, down to the operands, and requires data from every operand that is not a number literal; an
  `absent(X)` operand must find X instead. The split is done on a small scanner (tested below) rather than on
  PromQL's grammar, which is enough for operators at the top of an expression or of a parenthesised group: that
  is where comparisons and set operators stand in these rules. An operand that is itself an arithmetic
  expression (`A / ignoring (reason) group_left B`) is kept whole, so its vector matching is checked as well;
- the alerts this traffic must raise (poison messages, DLQ not empty, load shedding, error budget burn through
  the 503s) become active (pending or firing), and the ones that must stay quiet (targets down, token problems,
  publish and processing failures) do not.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from devstack.bootstrap import StackNames, emulator_client
from devstack.emulator import MotoServer
from devstack.stack import DevStack, StackConfig
from observability.observe import PrometheusServer
from observability.promql import Query, all_queries
from tests.aws_helpers import queue_depth, seed_payload, wait_for
from tests.observability.prometheus_server import (
    result,
    running_prometheus,
    wait_for_query,
    wait_for_scrapes,
    wait_for_scrapes_after,
)

pytestmark = pytest.mark.tools

MAX_BODY_BYTES = 2048
EXPECTED_ACTIVE_ALERTS = frozenset(
    {
        "EmailIngestConsumerPoisonMessages",
        "EmailIngestDeadLetterQueueNotEmpty",
        "EmailIngestApiLoadShedding",
        "EmailIngestApiErrorBudgetBurnFast",
        "EmailIngestApiErrorBudgetBurnSlow",
    }
)
EXPECTED_QUIET_ALERTS = frozenset(
    {
        "EmailIngestTargetDown",
        "EmailIngestJobDown",
        "EmailIngestJobAbsent",
        "EmailIngestTokenUnavailable",
        "EmailIngestTokenStale",
        "EmailIngestTokenRefreshFailing",
        "EmailIngestTokenClientsRefused",
        "EmailIngestPublishFailures",
        "EmailIngestConsumerProcessingFailures",
    }
)


# --------------------------------------------------------------------------------------------------------------
# Splitting a rule expression into the operands of its set and comparison operators

_SCAN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<open>[({\[])
  | (?P<close>[)}\]])
  | (?P<comparison>==|!=|>=|<=|>|<)
  | (?P<word>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<other>=~|!~|\#[^\n]*|[^\s"'`(){}\[\]A-Za-z_:=!<>]+|[=!])
  | (?P<space>\s+)
    """,
    re.VERBOSE,
)
# Lowest precedence first (PromQL: `or` < `and`, `unless` < comparisons).
_LEVELS: tuple[frozenset[str], ...] = (
    frozenset({"or"}),
    frozenset({"and", "unless"}),
    frozenset({"==", "!=", ">=", "<=", ">", "<"}),
)
# What may follow a binary operator before its right operand.
_MODIFIERS = re.compile(
    r"^\s*(?:bool\b)?\s*(?:(?:on|ignoring)\s*\([^)]*\))?\s*(?:(?:group_left|group_right)\b(?:\s*\([^)]*\))?)?\s*"
)
_NUMBER_EXPRESSION = re.compile(r"^[\s()0-9.eE+\-*/%^]+$")
_ABSENT = re.compile(r"^absent(?:_over_time)?\s*\((?P<inner>.*)\)$", re.DOTALL)


def _top_level_operators(expr: str) -> list[tuple[int, int, str]]:
    """(start, end, operator) of each operator outside brackets and strings."""
    found: list[tuple[int, int, str]] = []
    depth = 0
    for match in _SCAN.finditer(expr):
        kind, text = match.lastgroup, match.group()
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
        elif depth == 0 and (kind == "comparison" or (kind == "word" and text in {"or", "and", "unless"})):
            found.append((match.start(), match.end(), text))
    return found


def _strip_parentheses(expr: str) -> str:
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for match in _SCAN.finditer(expr):
            if match.lastgroup == "open":
                depth += 1
            elif match.lastgroup == "close":
                depth -= 1
                if depth == 0 and match.end() != len(expr):
                    return expr  # "(a) + (b)": the first parenthesis closes before the end
        expr = expr[1:-1].strip()
    return expr


def operands(expr: str) -> list[str]:
    """The operands of `expr`'s set and comparison operators, recursively; an expression without any is its own."""
    expr = _strip_parentheses(expr)
    operators = _top_level_operators(expr)
    for level in _LEVELS:
        cuts = [(start, end) for start, end, text in operators if text in level]
        if cuts:
            pieces, position = [], 0
            for start, end in cuts:
                pieces.append(expr[position:start])
                position = end
            pieces.append(expr[position:])
            return [operand for piece in pieces for operand in operands(_MODIFIERS.sub("", piece, count=1))]
    return [expr]


def checked_operands(expr: str) -> list[str]:
    """The operands that must return data on a healthy, busy stack: not number literals; X for `absent(X)`."""
    checked = []
    for operand in operands(expr):
        if _NUMBER_EXPRESSION.match(operand):
            continue
        absent = _ABSENT.match(operand)
        checked.append(absent.group("inner").strip() if absent else operand)
    return checked


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up == 0", ["up"]),
        ('sum by (job) (up{job=~"a|b"}) == 0', ['sum by (job) (up{job=~"a|b"})']),
        ("(a > (14.4 * 0.001) and b > (14.4 * 0.001)) or (c > 0.006 and d > 0.006)", ["a", "b", "c", "d"]),
        ("x > 0\nunless on (namespace, job)\ny > 0", ["x", "y"]),
        (
            "sum by (job, reason) (rate(s[5m]))\n/ ignoring (reason) group_left\nsum by (job) (rate(r[5m]))\n> 0.01",
            ["sum by (job, reason) (rate(s[5m]))\n/ ignoring (reason) group_left\nsum by (job) (rate(r[5m]))"],
        ),
        ('absent(up{job="a"}) or absent(up{job="b"})', ['up{job="a"}', 'up{job="b"}']),
        ('m{l=">", k!="a"} > 1 or vector(0)', ['m{l=">", k!="a"}', "vector(0)"]),
        ('count(m{l="<"} == bool 0)', ['count(m{l="<"} == bool 0)']),
        ("(a + b) / (c)", ["(a + b) / (c)"]),
        ("rate(m[5m]) >= bool 1 and on (job) n", ["rate(m[5m])", "n"]),
    ],
)
def test_operands_of_a_rule_expression(expr: str, expected: list[str]) -> None:
    assert [operand.strip() for operand in checked_operands(expr)] == expected


# --------------------------------------------------------------------------------------------------------------
# The stack, Prometheus and the traffic


@dataclass
class Traffic:
    statuses: dict[str, list[int]] = field(default_factory=dict)

    def record(self, kind: str, status: int) -> None:
        self.statuses.setdefault(kind, []).append(status)


async def _drive(api_url: str, token: str, traffic: Traffic) -> None:
    """One round of every kind of request: valid emails, each client error, a burst that gets shed."""
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as session:

        async def send(kind: str, method: str, path: str, **kwargs: Any) -> None:
            async with session.request(method, f"{api_url}{path}", **kwargs) as response:
                await response.read()
                traffic.record(kind, response.status)

        def email(subject: str) -> dict[str, Any]:
            return seed_payload(token, email_subject=subject)

        for i in range(6):  # two at a time: PUBLISH_MAX_PENDING is 2
            await asyncio.gather(*(send("valid", "POST", "/api/email", json=email(f"valid {i}.{j}")) for j in range(2)))
        json_headers = {"Content-Type": "application/json"}
        await send("malformed_json", "POST", "/api/email", data=b'{"data": ', headers=json_headers)
        await send("invalid_payload", "POST", "/api/email", json={"data": {"email_subject": "x"}, "token": token})
        await send("unauthorized", "POST", "/api/email", json=seed_payload("not-the-token"))
        await send("unauthorized", "POST", "/api/email", json=seed_payload(None))
        await send("too_large", "POST", "/api/email",
                   json=seed_payload(token, email_content="x" * (MAX_BODY_BYTES * 2)))  # fmt: skip
        await send(
            "unsupported_media_type", "POST", "/api/email", data=b"hello", headers={"Content-Type": "text/plain"}
        )
        await send("method_not_allowed", "GET", "/api/email")
        await send("not_found", "GET", "/no-such-route")
        # 30 at once against 2 publisher slots held for the 200 ms linger: all but about 2 are shed (503).
        await asyncio.gather(*(send("burst", "POST", "/api/email", json=email(f"burst {i}")) for i in range(30)))


@dataclass
class LiveStack:
    stack: DevStack
    prometheus: PrometheusServer
    traffic: Traffic


@pytest.fixture(scope="module")
def live(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    names = StackNames.unique("observe", max_receive_count=2, visibility_timeout_seconds=2)
    workdir = tmp_path_factory.mktemp("live")
    config = StackConfig(
        names=names,
        log_dir=workdir / "logs",
        emulator_endpoint_url=moto_server.endpoint_url,
        api_env={"PUBLISH_MAX_PENDING": "2", "PUBLISH_LINGER_MS": "200", "MAX_BODY_BYTES": str(MAX_BODY_BYTES)},
        consumer_env={
            "QUEUE_METRICS_INTERVAL_SECONDS": "1",
            "SQS_WAIT_TIME_SECONDS": "1",
            "POISON_RETRY_WINDOW_SECONDS": "2",
        },
    )
    stack = DevStack(config)  # its ports are chosen here: Prometheus starts first and finds the services up later
    with running_prometheus(stack.api_port, stack.consumer_port, workdir / "prometheus") as prometheus, stack:
        # A first scrape of the fresh counters (at 0) before the traffic, so that rate() and increase() see it.
        wait_for_scrapes(prometheus, 2)
        traffic = Traffic()
        asyncio.run(_drive(stack.api_url, stack.token, traffic))
        assert stack.resources is not None
        resources = stack.resources
        emulator_client("sqs", stack.endpoint_url).send_message(QueueUrl=resources.queue_url, MessageBody="{not json")
        # A second round after a scrape: series created by the first one (a status code seen for the first
        # time) now grow between two samples, so their rates are not 0.
        wait_for_scrapes_after(prometheus, time.time(), 2)
        asyncio.run(_drive(stack.api_url, stack.token, traffic))
        # The poison message reaches the DLQ after max_receive_count receives (2 s, then 2 s of back-off).
        wait_for(lambda: queue_depth(stack.endpoint_url, resources.dead_letter_queue_url)[0] == 1, timeout=30,
                 interval=0.25, message="the poison message to reach the DLQ")  # fmt: skip
        accepted = traffic.statuses["valid"].count(200) + traffic.statuses["burst"].count(200)
        wait_for_query(prometheus, 'sum(email_ingest_consumer_emails_stored_total{result="created"})',
                       lambda samples: bool(samples) and float(samples[0]["value"][1]) >= accepted,
                       timeout=30, what=f"{accepted} stored emails in the consumer's metrics")  # fmt: skip
        wait_for_query(prometheus, 'email_ingest_queue_messages{queue="dlq", state="visible"} == 1', bool,
                       timeout=30, what="the DLQ depth in the consumer's metrics")  # fmt: skip
        # Rates over [1m] need two samples of every series, including those that appeared at the end.
        wait_for_scrapes_after(prometheus, time.time(), 3)
        yield LiveStack(stack, prometheus, traffic)


def test_the_traffic_got_the_expected_answers(live: LiveStack) -> None:
    statuses = live.traffic.statuses
    assert statuses["valid"] == [200] * 24
    for kind, code in (("malformed_json", 400), ("invalid_payload", 400), ("unauthorized", 401),
                       ("too_large", 413), ("unsupported_media_type", 415), ("method_not_allowed", 405),
                       ("not_found", 404)):  # fmt: skip
        assert set(statuses[kind]) == {code}, (kind, statuses[kind])
    assert set(statuses["burst"]) <= {200, 503}
    assert statuses["burst"].count(503) >= 10, "load shedding was not provoked"


QUERIES = all_queries()
DASHBOARD_QUERIES = [q for q in QUERIES if q.source.startswith("observability/dashboards/")]
RULE_QUERIES = [q for q in QUERIES if q.source.startswith("observability/alerts/")]


def _ids(queries: list[Query]) -> list[str]:
    return [f"{q.source}:{q.name}" for q in queries]


def test_every_expression_was_found() -> None:
    assert len(DASHBOARD_QUERIES) > 50
    assert len(RULE_QUERIES) > 20
    assert {q.name.rsplit(" ", 1)[-1] for q in RULE_QUERIES} >= EXPECTED_ACTIVE_ALERTS | EXPECTED_QUIET_ALERTS


@pytest.mark.parametrize("query", DASHBOARD_QUERIES, ids=_ids(DASHBOARD_QUERIES))
def test_dashboard_query_returns_data(live: LiveStack, query: Query) -> None:
    answer = live.prometheus.query(query.promql)
    assert answer.get("status") == "success", f"{query.promql}\n{answer}"
    assert result(answer), f"no data for {query.name}: {query.promql}"


@pytest.mark.parametrize("query", RULE_QUERIES, ids=_ids(RULE_QUERIES))
def test_rule_expression_and_its_operands_run(live: LiveStack, query: Query) -> None:
    answer = live.prometheus.query(query.promql)
    assert answer.get("status") == "success", f"{query.promql}\n{answer}"
    for operand in checked_operands(query.promql):
        answer = live.prometheus.query(operand)
        assert answer.get("status") == "success", f"operand of {query.name}: {operand}\n{answer}"
        assert result(answer), f"no data for an operand of {query.name}: {operand}"


def test_the_alerts_follow_the_traffic(live: LiveStack) -> None:
    def active() -> set[str]:
        alerts = live.prometheus.get("/api/v1/alerts")["data"]["alerts"]
        return {alert["labels"]["alertname"] for alert in alerts if alert["state"] in {"pending", "firing"}}

    # The rules are evaluated every second; the recording rules behind the burn-rate alerts need one evaluation
    # before the alerts that read them.
    deadline = time.monotonic() + 20
    while not active() >= EXPECTED_ACTIVE_ALERTS and time.monotonic() < deadline:
        time.sleep(0.5)
    now_active = active()
    assert now_active >= EXPECTED_ACTIVE_ALERTS, f"missing: {sorted(EXPECTED_ACTIVE_ALERTS - now_active)}"
    assert not EXPECTED_QUIET_ALERTS & now_active, f"should be quiet: {sorted(EXPECTED_QUIET_ALERTS & now_active)}"


@pytest.mark.parametrize(
    "broken",
    [
        'max by (namespace, job) (email_ingest_queue_messagez{queue="dlq", state="visible"}) > 0',  # metric
        'max by (namespace, job) (email_ingest_queue_messages{queue="dead", state="visible"}) > 0',  # label value
        'absent(up{job="email-ingest-apii"})',  # fires in production, silently useless here
    ],
)
def test_a_broken_rule_is_caught_by_its_operands(live: LiveStack, broken: str) -> None:
    """A misspelt selector in a comparison looks like a quiet alert; the operand check is what catches it."""
    answer = live.prometheus.query(broken)
    assert answer.get("status") == "success"
    empty = [operand for operand in checked_operands(broken) if not result(live.prometheus.query(operand))]
    assert empty, f"the operand check would not catch {broken}"
