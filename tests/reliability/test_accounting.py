"""The soak's accounting (devstack.accounting.verify) catches each way a pipeline can get it wrong."""

from __future__ import annotations

import json
import uuid
from datetime import date

from devstack import accounting
from devstack.bootstrap import emulator_client
from devstack.emulator import MotoServer


def test_verify_counts_missing_duplicates_unexpected_and_mismatched(moto_server: MotoServer) -> None:
    s3 = emulator_client("s3", moto_server.endpoint_url)
    bucket = f"acct-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    ledger = accounting.Ledger()
    entries = []
    for index in range(5):
        data = accounting.make_email("acct", index, day=date(2030, 3, 1))
        entry = accounting.Acknowledged(index, str(uuid.uuid4()), f"m{index}", data)
        ledger.acknowledge(entry)
        entries.append(entry)

    def put(entry: accounting.Acknowledged, **changes: object) -> None:
        document = {**accounting.expected_object(entry.email_id, entry.data), "received_at": "2030-03-01T00:00:00.000Z"}
        document.update(changes)
        key = accounting.object_key(entry.email_id, entry.data)
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())

    put(entries[0])  # right
    put(entries[1])
    put(entries[1])  # overwritten: a second version
    put(entries[2], email_content="something else")  # wrong content
    # entries[3] and entries[4] are missing
    stray = accounting.Acknowledged(9, str(uuid.uuid4()), "m9", accounting.make_email("acct", 9, day=date(2030, 3, 1)))
    put(stray)  # stored, never acknowledged

    verdict = accounting.verify(s3, bucket, ledger, prefixes=("emails/2030/03/01/",))
    assert (verdict.acknowledged, verdict.stored, verdict.missing, verdict.duplicates) == (5, 2, 2, 1)
    assert (verdict.unexpected, verdict.mismatched) == (1, 1)
    assert not verdict.ok
    assert verdict.line() == "acknowledged 5, stored 2, missing 2, duplicates 1"
