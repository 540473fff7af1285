"""SsmTokenSource against moto's SSM: every page of GetParameterHistory, decrypted, with SSM's timestamps."""

from __future__ import annotations

import time
import uuid

import aioboto3
from prometheus_client import CollectorRegistry

from api_service.token_source import SsmTokenSource
from devstack.bootstrap import DUMMY_CREDENTIALS, emulator_client
from devstack.emulator import MotoServer
from ingest_common.aws import AwsCallMetrics


async def test_reads_every_version_decrypted_with_its_write_time(moto_server: MotoServer) -> None:
    name = f"/email-ingest/{uuid.uuid4().hex[:10]}/api-token"
    ssm = emulator_client("ssm", moto_server.endpoint_url)
    began = time.time()
    for index in range(60):  # more than one page (50)
        ssm.put_parameter(Name=name, Value=f"token-{index}", Type="SecureString", Overwrite=True)
    ended = time.time()
    registry = CollectorRegistry()
    session = aioboto3.Session(
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
    )
    async with session.client("ssm", region_name="us-east-1", endpoint_url=moto_server.endpoint_url) as client:
        # Inside the grace every version may still be presented: all are decrypted.
        source = SsmTokenSource(client, AwsCallMetrics(registry), parameter_name=name, rotation_grace_seconds=900)
        in_grace = await source.versions(name)
        # Past it only the latest is: one version decrypted, however many SSM keeps.
        metrics = AwsCallMetrics(CollectorRegistry())
        later = SsmTokenSource(
            client, metrics, parameter_name=name, rotation_grace_seconds=900, wall_clock=lambda: ended + 901
        )
        past_grace = await later.versions(name)
    assert [version.version for version in in_grace] == list(range(1, 61))
    assert [version.value for version in in_grace] == [f"token-{index}" for index in range(60)]
    assert all(version.last_modified.tzinfo is not None for version in in_grace)
    assert all(began - 1 <= version.last_modified.timestamp() <= ended + 1 for version in in_grace)
    history = {"service": "ssm", "operation": "GetParameterHistory", "outcome": "success"}
    assert registry.get_sample_value("email_ingest_aws_requests_total", history) == 2
    decrypting = {"service": "ssm", "operation": "GetParameters", "outcome": "success"}
    assert registry.get_sample_value("email_ingest_aws_requests_total", decrypting) == 6, "10 selectors a call"
    assert [version.version for version in past_grace] == list(range(1, 61))
    assert [version.value for version in past_grace] == [""] * 59 + ["token-59"]
    assert "token-" not in repr(in_grace), "values stay out of reprs (and so out of logs)"


async def test_reads_every_client_under_the_path_and_the_history_only_of_those_rotating(
    moto_server: MotoServer,
) -> None:
    base = f"/email-ingest/{uuid.uuid4().hex[:10]}"
    path = f"{base}/clients"
    ssm = emulator_client("ssm", moto_server.endpoint_url)
    ssm.put_parameter(Name=f"{base}/api-token", Value="single-token", Type="SecureString")
    for index in range(12):  # more than one page (10)
        ssm.put_parameter(Name=f"{path}/client{index:02d}", Value=f"token-{index}", Type="SecureString")
    ssm.put_parameter(Name=f"{path}/client00", Value="token-0-rotated", Type="SecureString", Overwrite=True)
    ssm.put_parameter(Name=f"{path}/team/nested", Value="not-a-client", Type="SecureString")  # below: not read
    ssm.put_parameter(Name=f"{path}/plain", Value="not-secure", Type="String")
    registry = CollectorRegistry()
    async with _session().client("ssm", region_name="us-east-1", endpoint_url=moto_server.endpoint_url) as client:
        source = SsmTokenSource(
            client,
            AwsCallMetrics(registry),
            parameter_name=f"{base}/api-token",
            parameter_path=path,
            rotation_grace_seconds=900,
        )
        found = await source.clients()
        past_grace = await SsmTokenSource(
            client,
            AwsCallMetrics(CollectorRegistry()),
            parameter_name=None,
            parameter_path=path,
            rotation_grace_seconds=900,
            wall_clock=lambda: time.time() + 901,
        ).clients()
    by_client = {parameter.client: parameter for parameter in found}
    assert [parameter.client for parameter in found] == [
        "default",
        *(f"client{index:02d}" for index in range(12)),
        "plain",
    ], "the single token first, then the path's by name; nothing from below the path"
    assert by_client["default"].single and not by_client["client01"].single
    assert [version.value for version in by_client["default"].versions] == ["single-token"]
    assert [version.value for version in by_client["client05"].versions] == ["token-5"]
    # Rotated inside the grace: both versions, from the history; past the grace only the latest.
    assert [version.value for version in by_client["client00"].versions] == ["token-0", "token-0-rotated"]
    assert not by_client["plain"].secure and by_client["plain"].versions == []
    assert [version.value for version in past_grace[0].versions] == ["token-0-rotated"]
    calls = {
        operation: registry.get_sample_value(
            "email_ingest_aws_requests_total", {"service": "ssm", "operation": operation, "outcome": "success"}
        )
        for operation in ("GetParametersByPath", "GetParameterHistory", "GetParameters")
    }
    # Two pages by path; one history for the single token and one for the rotated client, each with its values.
    assert calls == {"GetParametersByPath": 2, "GetParameterHistory": 2, "GetParameters": 2}
    assert "token-" not in repr(found)


def _session() -> aioboto3.Session:
    return aioboto3.Session(
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
    )
