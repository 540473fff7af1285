"""The chart on a real Kubernetes API server (etcd + kube-apiserver, no kubelet: see control_plane.py).

For every ci/ scenario, `helm install` then `helm upgrade` into a namespace of its own, and then:
- the server's validation, defaulting and pruning accepted every object: each object of `helm template` (same values)
  is stored, and everything helm rendered is in what the server stored (the server may only add defaults);
- the references between objects hold: selectors match the pod templates, the PDB, HPA, ScaledObject,
  TriggerAuthentication, NetworkPolicy, ServiceMonitor, Ingress and pod templates name objects (and ports) that
  exist;
- `helm uninstall` removes every object.
Pods never run (no kubelet, no controller manager): what needs them is out of reach here.
The CRDs of the custom kinds are made from the structural schemas in helm/schemas/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.control_plane import ControlPlane, apply_crds, running_control_plane
from tests.tooling import REPO_ROOT, TOOLS_DIR, require_tool, run_tool

pytestmark = pytest.mark.tools

CHART = REPO_ROOT / "helm" / "email-ingest"
CRD_SCHEMAS = sorted((REPO_ROOT / "helm" / "schemas").glob("*/*.json"))
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
RELEASE = "email-ingest"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


@pytest.fixture(scope="module")
def helm() -> str:
    return require_tool("helm")


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    etcd = require_tool("etcd")
    apiserver = require_tool("kube-apiserver")
    with running_control_plane(etcd, apiserver, tmp_path_factory.mktemp("control-plane")) as plane:
        apply_crds(plane, CRD_SCHEMAS)
        yield plane


def _helm(helm: str, plane: ControlPlane, *args: str) -> str:
    env = {"HELM_PLUGINS": str(TOOLS_DIR / "helm-plugins"), "KUBECONFIG": str(plane.kubeconfig)}
    return run_tool([helm, *args], env=env, timeout=300).stdout


# --- where an object lives on the server ------------------------------------------------------------------------


class Resources:
    """apiVersion + kind -> REST path, from the server's discovery documents."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self._cache: dict[str, dict[str, tuple[str, bool]]] = {}

    def path(self, api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
        if api_version not in self._cache:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            listing = self.plane.request("GET", base)
            self._cache[api_version] = {
                r["kind"]: (r["name"], r["namespaced"]) for r in listing["resources"] if "/" not in r["name"]
            }
        plural, namespaced = self._cache[api_version][kind]
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        prefix = f"{base}/namespaces/{namespace}" if namespaced else base
        return f"{prefix}/{plural}" + (f"/{name}" if name else "")


# --- rendered vs stored -----------------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    None: Decimal(1),
}


def _quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity's value (the server rewrites e.g. 0.5 as 500m), or None if `value` is not one."""
    match = _QUANTITY.match(str(value))
    if not match:
        return None
    return Decimal(match.group(1)) * _SUFFIX[match.group(2)]


def differences(rendered: Any, stored: Any, path: str = "") -> list[str]:
    """What helm rendered that the server did not store as rendered (it may add defaults, nothing else)."""
    if isinstance(rendered, dict):
        if not isinstance(stored, dict):
            return [f"{path}: rendered a map, stored {stored!r}"]
        found = []
        for key, value in rendered.items():
            if value is None or (value in ({}, []) and key not in stored):
                continue  # null and empty values are dropped on the way in
            if key not in stored:
                found.append(f"{path}.{key}: rendered {value!r}, not stored (pruned or dropped)")
            else:
                found.extend(differences(value, stored[key], f"{path}.{key}"))
        return found
    if isinstance(rendered, list):
        if not isinstance(stored, list) or len(stored) != len(rendered):
            return [f"{path}: rendered {rendered!r}, stored {stored!r}"]
        return [
            d for i, (r, s) in enumerate(zip(rendered, stored, strict=True)) for d in differences(r, s, f"{path}[{i}]")
        ]
    if rendered == stored:
        return []
    if "resources" in path or "Storage" in path or "sizeLimit" in path:
        left, right = _quantity(rendered), _quantity(stored)
        if left is not None and left == right:
            return []
    return [f"{path}: rendered {rendered!r}, stored {stored!r}"]


# --- references between objects ---------------------------------------------------------------------------------


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects an object with `labels`."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def reference_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Dangling references among the stored objects of one release."""
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    workloads = [obj for obj in objects if obj["kind"] in WORKLOAD_KINDS]
    deployments = by_kind.get("Deployment", {})
    services = by_kind.get("Service", {})
    problems: list[str] = []

    def template_labels(obj: dict[str, Any]) -> dict[str, str]:
        labels: dict[str, str] = obj["spec"]["template"]["metadata"].get("labels", {})
        return labels

    def container_ports(obj: dict[str, Any]) -> set[Any]:
        ports: set[Any] = set()
        for container in obj["spec"]["template"]["spec"]["containers"]:
            for port in container.get("ports", []):
                ports.update({port["containerPort"], port.get("name")})
        return ports

    for obj in workloads:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        selector = obj["spec"].get("selector")
        if obj["kind"] != "Job" and not selects(selector, template_labels(obj)):
            problems.append(f"{name}: selector {selector} does not match its pod template")
        pod = obj["spec"]["template"]["spec"]
        account = pod.get("serviceAccountName")
        if account and account not in by_kind.get("ServiceAccount", {}):
            problems.append(f"{name}: ServiceAccount {account} does not exist")
        for volume in pod.get("volumes", []):
            for kind, key, ref in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
                source = volume.get(key)
                if source and not source.get("optional") and source[ref] not in by_kind.get(kind, {}):
                    problems.append(f"{name}: volume {volume['name']} names {kind} {source[ref]}, which does not exist")
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            for env_from in container.get("envFrom", []):
                source = env_from.get("configMapRef")
                if source and not source.get("optional") and source["name"] not in by_kind.get("ConfigMap", {}):
                    problems.append(f"{name}: envFrom names ConfigMap {source['name']}, which does not exist")
            for env in container.get("env", []):
                source = (env.get("valueFrom") or {}).get("configMapKeyRef")
                if source and not source.get("optional"):
                    config_map = by_kind.get("ConfigMap", {}).get(source["name"])
                    if config_map is None or source["key"] not in config_map.get("data", {}):
                        problems.append(f"{name}: env {env['name']} names {source['name']}/{source['key']}: missing")

    for name, service in services.items():
        selector = service["spec"].get("selector")
        matched = [
            w
            for w in workloads
            if w["kind"] != "Job" and selector and selects({"matchLabels": selector}, template_labels(w))
        ]
        if not matched:
            problems.append(f"Service/{name}: selector {selector} matches no pod template")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if matched and not any(target in container_ports(w) for w in matched):
                problems.append(
                    f"Service/{name}: targetPort {target} is no port of {[w['metadata']['name'] for w in matched]}"
                )

    for name, pdb in by_kind.get("PodDisruptionBudget", {}).items():
        matched = [d for d in deployments.values() if selects(pdb["spec"]["selector"], template_labels(d))]
        if len(matched) != 1:
            problems.append(f"PodDisruptionBudget/{name}: selects {len(matched)} Deployments, not 1")

    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        target = hpa["spec"]["scaleTargetRef"]
        if target["kind"] not in by_kind or target["name"] not in by_kind[target["kind"]]:
            problems.append(f"HorizontalPodAutoscaler/{name}: target {target} does not exist")

    for name, scaled in by_kind.get("ScaledObject", {}).items():
        target = scaled["spec"]["scaleTargetRef"]
        if target["name"] not in by_kind.get(target.get("kind", "Deployment"), {}):
            problems.append(f"ScaledObject/{name}: target {target} does not exist")
        for trigger in scaled["spec"]["triggers"]:
            auth = (trigger.get("authenticationRef") or {}).get("name")
            if auth and auth not in by_kind.get(trigger["authenticationRef"].get("kind", "TriggerAuthentication"), {}):
                problems.append(f"ScaledObject/{name}: TriggerAuthentication {auth} does not exist")

    for name, policy in by_kind.get("NetworkPolicy", {}).items():
        if not any(selects(policy["spec"]["podSelector"], template_labels(w)) for w in workloads):
            problems.append(f"NetworkPolicy/{name}: podSelector matches no pod template")

    for name, monitor in by_kind.get("ServiceMonitor", {}).items():
        matched = [
            s for s in services.values() if selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))
        ]
        if not matched:
            problems.append(f"ServiceMonitor/{name}: selector matches no Service")
        for endpoint in monitor["spec"]["endpoints"]:
            port = endpoint.get("port")
            if port and not any(port in {p.get("name") for p in s["spec"]["ports"]} for s in matched):
                problems.append(f"ServiceMonitor/{name}: port {port} is on none of the Services it selects")

    for name, ingress in by_kind.get("Ingress", {}).items():
        backends = [p["backend"] for rule in ingress["spec"].get("rules", []) for p in rule["http"]["paths"]]
        if ingress["spec"].get("defaultBackend"):
            backends.append(ingress["spec"]["defaultBackend"])
        for backend in backends:
            backend_service = services.get(backend["service"]["name"])
            port = backend["service"]["port"]
            if backend_service is None:
                problems.append(f"Ingress/{name}: Service {backend['service']['name']} does not exist")
            elif not any(
                (port.get("name") and port.get("name") == p.get("name")) or port.get("number") == p["port"]
                for p in backend_service["spec"]["ports"]
            ):
                problems.append(f"Ingress/{name}: port {port} is not on Service {backend_service['metadata']['name']}")
    return problems


# --- the tests ----------------------------------------------------------------------------------------------------


def test_server_reports_the_built_version(control_plane: ControlPlane) -> None:
    """The binary knows its version (helm checks Chart.yaml's kubeVersion against it)."""
    version = control_plane.request("GET", "/version")
    assert version["gitVersion"].startswith("v1.") and version["major"] == "1", version


def test_crds_are_served(control_plane: ControlPlane) -> None:
    names = {
        crd["metadata"]["name"]
        for crd in control_plane.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
    }
    assert names == {
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "scaledobjects.keda.sh",
        "triggerauthentications.keda.sh",
    }


def test_crd_rejects_a_misplaced_field(control_plane: ControlPlane) -> None:
    """The CRDs made from helm/schemas do validate: a string where the schema wants an integer is refused."""
    resources = Resources(control_plane)
    path = resources.path("keda.sh/v1alpha1", "ScaledObject", "default")
    bad = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "bad"},
        "spec": {"scaleTargetRef": {"name": "x"}, "maxReplicaCount": "many", "triggers": []},
    }
    with pytest.raises(Exception, match="422"):
        control_plane.request("POST", path, bad)


def test_an_unknown_field_is_pruned_and_caught(control_plane: ControlPlane) -> None:
    """What the comparison below relies on: the server drops a field its schema lacks, and `differences` says so."""
    resources = Resources(control_plane)
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "pruned", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "endpoints": [{"port": "http", "intervall": "15s"}]},
    }
    control_plane.request("POST", resources.path("monitoring.coreos.com/v1", "ServiceMonitor", "default"), monitor)
    stored = control_plane.get(resources.path("monitoring.coreos.com/v1", "ServiceMonitor", "default", "pruned"))
    assert differences(monitor, stored) == [
        ".spec.endpoints[0].intervall: rendered '15s', not stored (pruned or dropped)"
    ]


def test_differences_allow_defaults_and_equal_quantities() -> None:
    rendered = {"spec": {"cpu": {"resources": {"limits": {"cpu": "0.5"}}}, "empty": {}, "none": None}}
    stored = {"spec": {"cpu": {"resources": {"limits": {"cpu": "500m"}}}, "defaulted": 1}}
    assert differences(rendered, stored) == []
    assert differences({"a": [1, 2]}, {"a": [1]}) == [".a: rendered [1, 2], stored [1]"]
    assert differences({"a": "x"}, {"a": "y"}) == [".a: rendered 'x', stored 'y'"]


def test_reference_problems_finds_dangling_references() -> None:
    template = {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "ports": []}]}}
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": template},
    }
    objects = [
        deployment,
        {"kind": "Service", "metadata": {"name": "s"}, "spec": {"selector": {"app": "other"}, "ports": [{"port": 80}]}},
        {"kind": "PodDisruptionBudget", "metadata": {"name": "p"}, "spec": {"selector": {"matchLabels": {"app": "x"}}}},
        {
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "gone"}},
        },
        {"kind": "NetworkPolicy", "metadata": {"name": "n"}, "spec": {"podSelector": {"matchLabels": {"app": "x"}}}},
    ]
    problems = reference_problems(objects)
    assert len(problems) == 4, problems
    assert selects({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]}, {"app": "api"})
    assert not selects({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {"app": "api"})


def _stored_objects(plane: ControlPlane, rendered: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    resources = Resources(plane)
    stored = []
    for obj in rendered:
        path = resources.path(obj["apiVersion"], obj["kind"], namespace, obj["metadata"]["name"])
        found = plane.get(path)
        assert found is not None, (
            f"{obj['kind']}/{obj['metadata']['name']} rendered by helm template is not on the server"
        )
        stored.append(found)
    return stored


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _check_release(helm: str, plane: ControlPlane, values: Path, namespace: str, revision: int) -> None:
    """The release is deployed at `revision`, and the server holds what helm sent, defaults aside.

    At revision 1, what helm sent is compared with `helm template` (same values) as well; after an upgrade it is
    not, since object names may carry the revision (the redrive Job's does) and `helm template` always renders 1.
    """
    status = yaml.safe_load(_helm(helm, plane, "status", RELEASE, "-n", namespace, "-o", "yaml"))
    assert status["info"]["status"] == "deployed" and status["version"] == revision, status["info"]
    sent = _documents(_helm(helm, plane, "get", "manifest", RELEASE, "-n", namespace))
    if revision == 1:
        template = _documents(_helm(helm, plane, "template", RELEASE, str(CHART), "-n", namespace, "-f", str(values)))
        assert template == sent, "helm install sent something else than helm template renders"
    stored = _stored_objects(plane, sent, namespace)
    diffs = [
        f"{obj['kind']}/{obj['metadata']['name']}{d}"
        for obj, found in zip(sent, stored, strict=True)
        for d in differences(obj, found)
    ]
    assert not diffs, "the server did not store what helm rendered:\n" + "\n".join(diffs)
    problems = reference_problems(stored)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_install_and_upgrade(helm: str, control_plane: ControlPlane, scenario: str) -> None:
    namespace = f"ci-{scenario}"
    values = CHART / "ci" / f"{scenario}-values.yaml"
    common = [RELEASE, str(CHART), "-n", namespace, "-f", str(values)]
    try:
        _helm(helm, control_plane, "install", *common, "--create-namespace")
        _check_release(helm, control_plane, values, namespace, revision=1)
        _helm(helm, control_plane, "upgrade", *common)
        _check_release(helm, control_plane, values, namespace, revision=2)
    except BaseException:
        print(control_plane.logs())  # shown by pytest with the failure
        raise
    manifest = _documents(_helm(helm, control_plane, "get", "manifest", RELEASE, "-n", namespace))
    _helm(helm, control_plane, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "60s")
    resources = Resources(control_plane)
    left = [
        f"{obj['kind']}/{obj['metadata']['name']}"
        for obj in manifest
        if control_plane.get(resources.path(obj["apiVersion"], obj["kind"], namespace, obj["metadata"]["name"]))
        is not None
    ]
    assert not left, f"helm uninstall left {left}"
