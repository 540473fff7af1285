"""moto's server with the SQS behaviour that the AWS provider relies on and moto 5.2.5 gets wrong.

Found by applying terraform/modules/queue to moto (terraform/README.md, "What is and is not checked"):
1. `SetQueueAttributes` accepts `RedriveAllowPolicy` but `GetQueueAttributes` never returns it (and refuses it by
   name), so `aws_sqs_queue_redrive_allow_policy` waits for it until the provider times out: the "hang".
2. Every `SetQueueAttributes` call that does not carry `Policy` resets the queue's policy to none, so setting the
   redrive policies wipes the TLS-only queue policy that `aws_sqs_queue_policy` set.
3. `RedrivePolicy` comes back as `json.dumps` with spaces; SQS answers compact JSON. The provider keeps moto's
   text in the state and then plans a "whitespace change" on `aws_sqs_queue.redrive_policy`, which also defers the
   queue policy documents to apply time: drift right after apply.
With the three patched, the queue example applies, plans no changes and destroys (checked with the AWS provider
5.100.0; see terraform/README.md). test_moto_for_terraform.py keeps each patch honest: it fails once moto itself
is fixed, so that the patch can go.

Run as `python -m tests.terraform.moto_for_terraform -H 127.0.0.1 -p PORT` (moto.server's arguments).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def patch_sqs() -> None:
    from moto.sqs import models

    queue_class: Any = models.Queue
    if "RedriveAllowPolicy" in queue_class.BASE_ATTRIBUTES:
        return  # already patched
    queue_class.BASE_ATTRIBUTES = [*queue_class.BASE_ATTRIBUTES, "RedriveAllowPolicy"]
    original_set = queue_class._set_attributes
    original_attributes = queue_class.attributes.fget

    def _set_attributes(self: Any, attributes: dict[str, Any], now: float | None = None) -> None:
        policy = getattr(self, "policy", None)
        if not hasattr(self, "redrive_allow_policy"):
            self.redrive_allow_policy = None
        original_set(self, attributes, now)
        if "Policy" not in attributes:
            self.policy = policy

    def attributes(self: Any) -> dict[str, Any]:
        result: dict[str, Any] = original_attributes(self)
        if not result.get("RedriveAllowPolicy"):
            result.pop("RedriveAllowPolicy", None)
        if self.redrive_policy:
            result["RedrivePolicy"] = json.dumps(self.redrive_policy, separators=(",", ":"))
        return result

    queue_class._set_attributes = _set_attributes
    queue_class.attributes = property(attributes)


def main(argv: list[str]) -> int:
    patch_sqs()
    from moto.server import main as moto_main

    moto_main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
