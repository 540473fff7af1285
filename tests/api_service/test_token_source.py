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
        in_grace = await SsmTokenSource(client, name, AwsCallMetrics(registry), rotation_grace_seconds=900).versions()
        # Past it only the latest is: one version decrypted, however many SSM keeps.
        metrics = AwsCallMetrics(CollectorRegistry())
        later = SsmTokenSource(client, name, metrics, rotation_grace_seconds=900, wall_clock=lambda: ended + 901)
        past_grace = await later.versions()
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
