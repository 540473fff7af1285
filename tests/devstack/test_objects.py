"""`make objects` (python -m devstack.objects): what was stored, without the AWS CLI."""

from __future__ import annotations

import io
import json
import time

import pytest

from devstack import objects
from devstack.bootstrap import StackNames, emulator_client
from devstack.emulator import MotoServer
from devstack.processes import free_port
from devstack.settings import s3_endpoint_from_env


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return objects.main(list(args), out=out), out.getvalue()


def test_lists_the_keys_and_prints_the_newest_or_the_one_asked(
    moto_server: MotoServer, stack_names: StackNames, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = emulator_client("s3", moto_server.endpoint_url)
    s3.create_bucket(Bucket=stack_names.bucket)
    where = ("--endpoint-url", moto_server.endpoint_url, "--bucket", stack_names.bucket)
    status, text = run(*where)
    assert status == 0
    assert "nothing stored yet" in text

    keys = [f"emails/2031/01/0{day}/id-{day}.json" for day in range(1, 4)]
    for day, key in enumerate(keys, start=1):
        s3.put_object(Bucket=stack_names.bucket, Key=key, Body=json.dumps({"email_id": f"id-{day}", "n": "é"}))
        time.sleep(1.1)  # LastModified has whole seconds on moto: newest last
    s3.put_object(Bucket=stack_names.bucket, Key="elsewhere/not-an-email.json", Body=b"{}")

    status, text = run(*where)
    assert status == 0
    assert f"3 object(s) in s3://{stack_names.bucket}/emails/" in text
    assert all(key in text for key in keys)
    assert "elsewhere/" not in text
    assert text.index(keys[0]) < text.index(keys[2]), "oldest first"
    assert text.rstrip().endswith('"n": "é"\n}'), "the newest, printed as readable JSON"
    assert f"s3://{stack_names.bucket}/{keys[2]}:" in text

    status, text = run(*where, "--limit", "1")
    assert "the newest 1; --limit 0 lists all" in text
    assert keys[0] not in text

    status, text = run(*where, keys[0])
    assert status == 0
    assert json.loads(text.split(":\n", 1)[1]) == {"email_id": "id-1", "n": "é"}

    status, _ = run(*where, "emails/none.json")
    assert status == 1
    assert "no object" in capsys.readouterr().err


def test_says_when_nothing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    status, _ = run("--endpoint-url", f"http://127.0.0.1:{free_port()}")
    assert status == 1
    assert "is `make run` running" in capsys.readouterr().err


def test_finds_s3_where_make_run_serves_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("LOCAL_AWS", "S3_PORT", "EMULATOR_PORT"):
        monkeypatch.delenv(variable, raising=False)
    assert s3_endpoint_from_env("objects") == "http://127.0.0.1:5000"
    monkeypatch.setenv("EMULATOR_PORT", "5100")
    assert s3_endpoint_from_env("objects") == "http://127.0.0.1:5100"
    monkeypatch.setenv("LOCAL_AWS", "fast")
    assert s3_endpoint_from_env("objects") == "http://127.0.0.1:9000"
    monkeypatch.setenv("S3_PORT", "9100")
    assert s3_endpoint_from_env("objects") == "http://127.0.0.1:9100"
