"""Checks of the Helm chart (helm/email-ingest), per ci/ scenario where it applies.

- `helm lint --strict`;
- the rendered manifests against the Kubernetes JSON schemas, offline and strict (kubeconform), for the chart's
  minimum Kubernetes version and the current one, with the CRD schemas kept in helm/schemas/;
- restricted pod security, probes and grace periods on every pod of every scenario;
- the helm-unittest suites under helm/email-ingest/tests/;
- checkov on the rendered manifests, with the skips and their reasons in helm/.checkov.yaml;
- values.schema.json rejecting bad values, as helm itself validates them.
The checks that need no tool are in test_chart_files.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tooling import REPO_ROOT, TOOLS_DIR, require_tool, run_tool

pytestmark = pytest.mark.tools

CHART = REPO_ROOT / "helm" / "email-ingest"
CRD_SCHEMAS = REPO_ROOT / "helm" / "schemas"
CHECKOV_CONFIG = REPO_ROOT / "helm" / ".checkov.yaml"
K8S_SCHEMAS = TOOLS_DIR / "k8s-schemas"
# The chart's minimum (Chart.yaml kubeVersion) and the version helm is built for (scripts/tools/install-helm.sh).
KUBERNETES_VERSIONS = ("1.30.0", "1.36.0")
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
UNITTEST_SUITES = sorted(p.name for p in (CHART / "tests").glob("*_test.yaml"))
RELEASE = "email-ingest"
NAMESPACE = "email-ingest"
POD_SPEC_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def _helm_env() -> dict[str, str]:
    return {"HELM_PLUGINS": str(TOOLS_DIR / "helm-plugins")}


def _scenario_values(scenario: str) -> Path:
    return CHART / "ci" / f"{scenario}-values.yaml"


def _render(helm: str, *args: str) -> str:
    return run_tool([helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args], env=_helm_env()).stdout


@pytest.fixture(scope="module")
def helm() -> str:
    return require_tool("helm")


@pytest.fixture(scope="module")
def rendered_dir(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every scenario rendered once, as <scenario>.yaml in one folder (checkov scans the folder in one run)."""
    out = tmp_path_factory.mktemp("rendered")
    for scenario in SCENARIOS:
        (out / f"{scenario}.yaml").write_text(_render(helm, "-f", str(_scenario_values(scenario))))
    return out


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _pod_specs(docs: list[dict[str, Any]], kinds: set[str] = POD_SPEC_KINDS) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in kinds:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


# --- helm lint and schema validation of the rendered manifests ------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(helm: str, scenario: str) -> None:
    result = run_tool([helm, "lint", "--strict", str(CHART), "-f", str(_scenario_values(scenario))], env=_helm_env())
    assert "0 chart(s) failed" in result.stdout


def test_scenarios_cover_the_issue() -> None:
    assert {"minimal", "production", "keda", "nodeport", "ingress", "redrive"} <= set(SCENARIOS)


@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_manifests_match_kubernetes_schemas(rendered_dir: Path, scenario: str, kubernetes_version: str) -> None:
    kubeconform = require_tool("kubeconform")
    schema_dir = K8S_SCHEMAS / f"v{kubernetes_version}-standalone-strict"
    if not schema_dir.is_dir():
        pytest.fail(f"no Kubernetes schemas in {schema_dir}: run scripts/tools/install-helm.sh")
    result = run_tool(
        [
            kubeconform,
            "-strict",
            "-summary",
            "-output",
            "json",
            "-kubernetes-version",
            kubernetes_version,
            # No -ignore-missing-schemas: a kind without a schema is an error, so nothing goes unchecked.
            "-schema-location",
            str(K8S_SCHEMAS) + "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}"
            "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
            "-schema-location",
            str(CRD_SCHEMAS) + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
            str(rendered_dir / f"{scenario}.yaml"),
        ]
    )
    summary = json.loads(result.stdout)["summary"]
    assert summary["valid"] == len(_documents(rendered_dir / f"{scenario}.yaml")), summary
    assert summary["skipped"] == 0, summary


def test_kubeconform_rejects_an_unknown_field(rendered_dir: Path, tmp_path: Path) -> None:
    """The validation is strict: a misspelt field in a CRD-backed kind (here a ServiceMonitor) is an error."""
    kubeconform = require_tool("kubeconform")
    text = (rendered_dir / "production.yaml").read_text()
    assert "scrapeTimeout:" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("scrapeTimeout:", "scrapeTimout:"))
    completed = subprocess.run(
        [
            kubeconform,
            "-strict",
            "-kubernetes-version",
            KUBERNETES_VERSIONS[-1],
            "-schema-location",
            str(K8S_SCHEMAS) + "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}"
            "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
            "-schema-location",
            str(CRD_SCHEMAS) + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
            str(bad),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode != 0
    assert "scrapeTimout" in completed.stdout


# --- what every pod must have, in every scenario --------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_pod_runs_restricted(rendered_dir: Path, scenario: str) -> None:
    docs = _documents(rendered_dir / f"{scenario}.yaml")
    pods = list(_pod_specs(docs))
    assert len(list(_pod_specs(docs, {"Deployment"}))) == 2, [name for name, _ in pods]
    # The redrive Job (ci/redrive-values.yaml) runs under the same restrictions as the services.
    assert (scenario == "redrive") == any(name.startswith("Job/") for name, _ in pods), [name for name, _ in pods]
    for name, spec in pods:
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] == 10001, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp_volumes, f"{name}: /tmp is not an emptyDir"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_pod_has_probes_and_a_grace_period_that_covers_its_drain(rendered_dir: Path, scenario: str) -> None:
    docs = _documents(rendered_dir / f"{scenario}.yaml")
    configmaps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    # The services' Deployments; the redrive Job runs to completion and has nothing to probe.
    for name, spec in _pod_specs(docs, {"Deployment"}):
        (container,) = spec["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
        env = configmaps[container["envFrom"][0]["configMapRef"]["name"]]
        drain = int(env["SHUTDOWN_GRACE_SECONDS"])
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert spec["terminationGracePeriodSeconds"] > drain + pre_stop, name


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_both_services_run_the_same_image_tag(rendered_dir: Path, scenario: str) -> None:
    docs = _documents(rendered_dir / f"{scenario}.yaml")
    images = [s["containers"][0]["image"] for _, s in _pod_specs(docs)]
    tags = {re.sub(r"@sha256:[0-9a-f]+$", "", image).rsplit(":", 1)[1] for image in images}
    assert len(list(_pod_specs(docs, {"Deployment"}))) == 2
    assert len(tags) == 1, images


# --- helm-unittest ----------------------------------------------------------------------------------------------------


def test_unittest_suites_exist() -> None:
    assert len(UNITTEST_SUITES) >= 8, UNITTEST_SUITES


@pytest.mark.parametrize("suite", UNITTEST_SUITES)
def test_helm_unittest(helm: str, suite: str) -> None:
    if not (TOOLS_DIR / "helm-plugins" / "unittest" / "plugin.yaml").is_file():
        pytest.fail("the helm-unittest plugin is not installed: run scripts/tools/install-helm.sh")
    result = run_tool([helm, "unittest", "--color=false", "-f", f"tests/{suite}", str(CHART)], env=_helm_env())
    assert re.search(r"Tests:\s+\d+ passed", result.stdout), result.stdout


# --- values.schema.json, as helm applies it -------------------------------------------------------------------------

BAD_VALUES = {
    "typo-at-top-level": (["--set", "serviceMonitors.enabled=true"], "serviceMonitors"),
    "typo-in-component": (["--set", "consumer.kdea.enabled=true"], "kdea"),
    "root-uid": (["--set", "securityContext.runAsUser=0"], "runAsUser"),
    "load-balancer-service": (["--set", "api.service.type=LoadBalancer"], "type"),
    "per-service-tag": (["--set", "api.image.tag=9.9.9"], "tag"),
    "seconds-as-string": (["--set-string", "consumer.config.shutdownGraceSeconds=25s"], "shutdownGraceSeconds"),
    "not-an-iam-role": (["--set", "consumer.serviceAccount.roleArn=arn:aws:s3:::bucket"], "roleArn"),
    "not-a-queue-url": (["--set", "aws.sqsQueueUrl=email-ingest"], "sqsQueueUrl"),
    "typo-in-redrive": (["--set", "redrive.serviceAcount.name=x"], "serviceAcount"),
    "redrive-role-not-iam": (["--set", "redrive.serviceAccount.roleArn=arn:aws:sqs:eu-west-1:1:q"], "roleArn"),
    "redrive-zero-messages": (["--set", "redrive.job.maxMessages=0"], "maxMessages"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_helm_rejects_bad_values(helm: str, case: str) -> None:
    args, expected = BAD_VALUES[case]
    completed = subprocess.run(
        [helm, "template", RELEASE, str(CHART), "-f", str(_scenario_values("minimal")), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **_helm_env()},
    )
    assert completed.returncode != 0, f"{case} was accepted"
    assert "schema" in completed.stderr, completed.stderr
    assert expected in completed.stderr, completed.stderr


def test_helm_fails_without_the_required_aws_values(helm: str) -> None:
    completed = subprocess.run(
        [helm, "template", RELEASE, str(CHART)], capture_output=True, text=True, check=False, env=os.environ.copy()
    )
    assert completed.returncode != 0
    assert "aws.region is required" in completed.stderr, completed.stderr


# --- checkov --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_report(rendered_dir: Path) -> dict[str, Any]:
    """One checkov run over every rendered scenario (it costs seconds to start); results are split per file."""
    checkov = require_tool("checkov")
    completed = subprocess.run(
        [checkov, "-d", str(rendered_dir), "--config-file", str(CHECKOV_CONFIG), "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=rendered_dir,
        # No call to the vendor's API for guideline mappings: this runs offline.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        timeout=600,
    )
    try:
        report: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov exited {completed.returncode}\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    return report


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_checkov_passes(checkov_report: dict[str, Any], scenario: str) -> None:
    def mine(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [c for c in checks if Path(c["file_path"]).name == f"{scenario}.yaml"]

    results = checkov_report["results"]
    failed = mine(results["failed_checks"])
    assert mine(results["passed_checks"]), f"checkov scanned nothing of {scenario}"
    assert not failed, "\n".join(f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in failed)
