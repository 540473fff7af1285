"""schemathesis (4.x CLI) against the committed OpenAPI document and the API started by DevStack.

Checks: no 5xx, every status / content type / header / body conforms to the document, schema-violating requests
are refused (`negative_data_rejection`) and schema-valid ones accepted (`positive_data_acceptance`): the document
states the server's rules as patterns and bounds (the timestamp's range in both forms, the characters of each
field, the Idempotency-Key's), so the two agree (tests/api_service/test_openapi.py checks them exhaustively).
A schema-valid request may still get 503 + Retry-After (the email not taken: load shedding on moto, a documented,
transient answer) or 429; schemathesis.toml beside this file says so.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.harness import REPO_ROOT, FaultyPipeline
from tests.tooling import TOOLS_BIN

# Generation costs ~40 ms of CPU a case: the default run stays short, the slow run goes for thousands.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "500"))
MAX_EXAMPLES_SLOW = 3000
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "ignored_auth",
    ]
)


def _schemathesis() -> str:
    venv_bin = Path(sys.executable).parent
    candidate = venv_bin / "schemathesis"
    assert candidate.is_file(), f"schemathesis is not in the project's venv ({venv_bin}); run `make venv`"
    return str(candidate)


@pytest.mark.parametrize(
    "max_examples",
    [MAX_EXAMPLES, pytest.param(MAX_EXAMPLES_SLOW, marks=[pytest.mark.slow, pytest.mark.timeout(1800)])],
    ids=["short", "long"],
)
def test_fuzzed_requests_get_documented_answers(pipeline: FaultyPipeline, tmp_path: Path, max_examples: int) -> None:
    command = [
        _schemathesis(),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        str(REPO_ROOT / "api_service" / "openapi.json"),
        "--url",
        pipeline.api_url,
        "--header",
        f"Authorization: Bearer {pipeline.token}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(max_examples),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "2",
        "--request-timeout",
        "15",
        "--suppress-health-check",
        "too_slow,filter_too_much",
        "--no-color",
        # A failure's report prints its seed: SCHEMATHESIS_SEED=<seed> replays the same run.
        *(["--seed", os.environ["SCHEMATHESIS_SEED"]] if os.environ.get("SCHEMATHESIS_SEED") else []),
    ]
    completed = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PATH": f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-20_000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated is not None, output[-5000:]
    assert int(generated.group(1)) >= max_examples, output[-5000:]
    assert pipeline.token not in output  # schemathesis sanitises auth headers in its report
