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
        versions = await SsmTokenSource(client, name, AwsCallMetrics(registry)).versions()
    assert [version.version for version in versions] == list(range(1, 61))
    assert [version.value for version in versions] == [f"token-{index}" for index in range(60)]
    assert all(version.last_modified.tzinfo is not None for version in versions)
    assert all(began - 1 <= version.last_modified.timestamp() <= ended + 1 for version in versions)
    calls = {"service": "ssm", "operation": "GetParameterHistory", "outcome": "success"}
    assert registry.get_sample_value("email_ingest_aws_requests_total", calls) == 2
    assert "token-" not in repr(versions), "values stay out of reprs (and so out of logs)"
