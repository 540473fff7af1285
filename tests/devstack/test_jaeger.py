"""Jaeger's configuration (every listener on 127.0.0.1, no self-telemetry port) and `make observe`'s TRACING switch."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from devstack.jaeger import JaegerServer, jaeger_config
from devstack.stack import StackConfig
from observability import observe


def endpoints(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [str(value) for key, value in node.items() if key == "endpoint"]
        return found + [endpoint for value in node.values() for endpoint in endpoints(value)]
    if isinstance(node, list):
        return [endpoint for value in node for endpoint in endpoints(value)]
    return []


def test_every_listener_is_on_loopback_at_the_ports_asked_for() -> None:
    config = yaml.safe_load(jaeger_config(otlp_grpc=1, otlp_http=2, query_http=3, query_grpc=4, max_traces=10))
    assert sorted(endpoints(config)) == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"]
    assert config["service"]["telemetry"]["metrics"]["level"] == "none"  # else the collector serves :8888
    assert config["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]
    assert config["extensions"]["jaeger_query"]["enable_tracing"] is False  # else it dials localhost:4317


def test_a_server_writes_its_configuration_and_cleans_it_up(tmp_path: Any) -> None:
    server = JaegerServer(binary=tmp_path / "absent", query_port=40001, otlp_http_port=40002, otlp_grpc_port=40003)
    assert server.query_url == "http://127.0.0.1:40001"
    assert server.otlp_http_url == "http://127.0.0.1:40002"
    assert "127.0.0.1:40003" in server.config_path.read_text()
    with pytest.raises(FileNotFoundError, match=r"install-jaeger\.sh"):
        server.spawn()
    server.stop()
    assert not server.config_path.exists()


def test_observe_points_both_services_at_jaeger(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("TRACING", "jaeger")
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    monkeypatch.setattr("devstack.jaeger.jaeger_binary", lambda: tmp_path / "jaeger")
    (tmp_path / "jaeger").write_text("")
    ports = {"JAEGER_PORT": 40011, "JAEGER_OTLP_GRPC_PORT": 40012, "JAEGER_OTLP_HTTP_PORT": 40013}
    config = StackConfig()
    jaeger = observe.tracing_backend(config, ports)
    assert jaeger is not None
    for env in (config.api_env, config.consumer_env):
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:40013"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        assert env["OTEL_TRACES_SAMPLER"] == "always_on"
    jaeger.stop()


def test_observe_leaves_tracing_to_the_environment_without_tracing_jaeger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACING", raising=False)
    assert observe.jaeger_ports_from_env() == {}
    config = StackConfig()
    assert observe.tracing_backend(config, {}) is None
    assert config.api_env == config.consumer_env == {}


def test_observe_refuses_an_unknown_tracing_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACING", "zipkin")
    with pytest.raises(SystemExit, match="TRACING='zipkin'"):
        observe.tracing_from_env()
