"""observability.prometheus_config: the local Prometheus that `make observe` and the end-to-end test start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from observability.prometheus_config import prometheus_config, render, rule_files
from tests.tooling import REPO_ROOT, require_tool, run_tool


def test_config_scrapes_both_services_on_loopback_and_loads_every_rule_file() -> None:
    config = yaml.safe_load(render(18080, 18081, scrape_interval="1s"))
    assert config["global"] == {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    jobs = {c["job_name"]: c["static_configs"][0]["targets"] for c in config["scrape_configs"]}
    assert jobs == {"email-ingest-api": ["127.0.0.1:18080"], "email-ingest-consumer": ["127.0.0.1:18081"]}
    assert config["rule_files"] == [str(p) for p in sorted((REPO_ROOT / "observability/alerts").glob("*.rules.yaml"))]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in config["rule_files"])
    assert len(rule_files()) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"api_port": 0, "consumer_port": 8081}, "api_port"),
        ({"api_port": 8080, "consumer_port": 70000}, "consumer_port"),
        ({"api_port": 8080, "consumer_port": 8081, "scrape_interval": "1 second"}, "scrape_interval"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prometheus_config(**kwargs)  # type: ignore[arg-type]


def test_custom_rule_list() -> None:
    config = prometheus_config(1, 2, rules=[])
    assert config["rule_files"] == []


@pytest.mark.integration
def test_promtool_accepts_the_rendered_config(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    path = tmp_path / "prometheus.yml"
    completed = subprocess.run(
        [sys.executable, "-m", "observability.prometheus_config", "--api-port", "18080", "--consumer-port", "18081",
         "--scrape-interval", "2s", "--output", str(path)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert completed.stdout == ""
    result = run_tool([promtool, "check", "config", str(path)])
    assert "3 rule files found" in result.stdout
