"""`make objects` (python -m devstack.objects): what `make run` stored, without the AWS CLI.

    python -m devstack.objects            # lists the newest keys, then prints the newest object
    python -m devstack.objects KEY        # prints that object
    python -m devstack.objects --limit 0  # lists every key

It finds S3 the way `make run` does (LOCAL_AWS, then S3_PORT or EMULATOR_PORT), or at --endpoint-url, and lists
the per-email objects, or the batches with STORAGE_LAYOUT=batched (a batch prints as the emails it holds).
Exit status: 0, 1 when S3 does not answer or the key is not there, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from devstack.bootstrap import StackNames, emulator_client
from devstack.settings import s3_endpoint_from_env, stored_prefix

HINT = "\n  is `make run` running, started with the same LOCAL_AWS (and S3_PORT or EMULATOR_PORT)?"


def list_objects(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object under `prefix`, oldest first."""
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(page.get("Contents", []))
    return sorted(found, key=lambda item: (item["LastModified"], item["Key"]))


BATCH_LINES_SHOWN = 3


def print_object(s3: Any, bucket: str, key: str, out: TextIO) -> None:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if key.endswith(".ndjson.gz"):
        lines = gzip.decompress(body).splitlines()
        shown = lines[-BATCH_LINES_SHOWN:]
        print(f"s3://{bucket}/{key}: a batch of {len(lines)} email(s), the last {len(shown)}:", file=out)
        for line in shown:
            print(json.dumps(json.loads(line), indent=2, ensure_ascii=False), file=out)
        return
    try:
        text = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:  # not JSON: as it is
        text = body.decode("utf-8", errors="replace")
    print(f"s3://{bucket}/{key}:\n{text}", file=out)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.objects", description=__doc__.split("\n")[0])
    parser.add_argument("key", nargs="?", help="print this object (default: the newest)")
    parser.add_argument("--endpoint-url", help="S3 endpoint (default: where `make run` serves it)")
    parser.add_argument("--bucket", default=StackNames().bucket, help="bucket (default: %(default)s)")
    parser.add_argument("--prefix", default=stored_prefix(os.environ), help="key prefix to list (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=20, help="newest keys listed, 0 for all (default: 20)")
    args = parser.parse_args(argv)
    if args.limit < 0:
        parser.error("--limit must be 0 or more")
    endpoint = args.endpoint_url or s3_endpoint_from_env("objects")
    # Fail fast when nothing listens: botocore would otherwise retry for a while.
    s3 = emulator_client("s3", endpoint, config=Config(connect_timeout=2, retries={"max_attempts": 1}))
    where = f"s3://{args.bucket}/{args.prefix} at {endpoint}"
    try:
        if args.key:
            print_object(s3, args.bucket, args.key, out)
            return 0
        objects = list_objects(s3, args.bucket, args.prefix)
        if not objects:
            print(f"nothing stored yet in {where}: send an email (the curl `make run` printed)", file=out)
            return 0
        shown = objects if args.limit == 0 else objects[-args.limit :]
        more = f" (the newest {len(shown)}; --limit 0 lists all)" if len(shown) < len(objects) else ""
        print(f"{len(objects)} object(s) in {where}, oldest first{more}:", file=out)
        for item in shown:
            print(f"  {item['LastModified']:%Y-%m-%d %H:%M:%S}  {item['Size']:>8,} B  {item['Key']}", file=out)
        print(file=out)
        print_object(s3, args.bucket, objects[-1]["Key"], out)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in {"NoSuchKey", "404"}:
            print(f"objects: no object s3://{args.bucket}/{args.key} at {endpoint}", file=sys.stderr)
        else:
            print(f"objects: {code} for {where}{HINT}", file=sys.stderr)
        return 1
    except BotoCoreError as exc:
        print(f"objects: {exc}{HINT}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
