"""A Kubernetes control plane without a kubelet, as envtest runs one: etcd and kube-apiserver on 127.0.0.1.

Both binaries come from scripts/tools/install-kube-apiserver.sh (etcd from Debian's etcd-server, kube-apiserver built
from the Go module proxy). Certificates are made here for each run and thrown away with it: a CA, the server's
certificate for 127.0.0.1, a client certificate in system:masters for the tests and helm, and the service
account signing key. Nothing listens beyond loopback.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.processes import LOOPBACK, ManagedProcess, ProcessFailed, free_port

# Where kube-apiserver allocates Service IPs from. Only numbers in its own storage: no interface, route or traffic.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    sa_public: Path
    sa_private: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    usage: list[x509.ObjectIdentifier] | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_certificates(folder: Path) -> Certificates:
    """A throwaway CA with a server certificate for 127.0.0.1 and a cluster-admin client certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "email-ingest-test-ca")])
    ca_cert = _certificate(ca_name, ca_key.public_key(), ca_name, ca_key, ca=True)

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        server_key.public_key(),
        ca_name,
        ca_key,
        ca=False,
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
        sans=[x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _certificate(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "email-ingest-tests"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            ]
        ),
        client_key.public_key(),
        ca_name,
        ca_key,
        ca=False,
        usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    certs = Certificates(
        ca=folder / "ca.crt",
        server_cert=folder / "server.crt",
        server_key=folder / "server.key",
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
        sa_public=folder / "sa.pub",
        sa_private=folder / "sa.key",
    )
    certs.ca.write_bytes(ca_cert.public_bytes(pem))
    certs.server_cert.write_bytes(server_cert.public_bytes(pem))
    _write_key(certs.server_key, server_key)
    certs.client_cert.write_bytes(client_cert.public_bytes(pem))
    _write_key(certs.client_key, client_key)
    _write_key(certs.sa_private, sa_key)
    certs.sa_public.write_bytes(sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo))
    return certs


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: {status} {body[:2000]}")
        self.status = status
        self.body = body


@dataclass
class ControlPlane:
    url: str
    certs: Certificates
    kubeconfig: Path
    etcd: ManagedProcess
    apiserver: ManagedProcess

    def session(self) -> requests.Session:
        session = requests.Session()
        # Else REQUESTS_CA_BUNDLE (set on these machines) wins over `verify`, and a proxy from the environment could
        # be used: this server is on loopback, with its own CA.
        session.trust_env = False
        session.cert = (str(self.certs.client_cert), str(self.certs.client_key))
        session.verify = str(self.certs.ca)
        return session

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, **params: str) -> dict[str, Any]:
        with self.session() as session:
            response = session.request(method, self.url + path, json=body, params=params or None, timeout=30)
        if response.status_code >= 300:
            raise ApiError(method, path, response.status_code, response.text)
        answer: dict[str, Any] = response.json()
        return answer

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None when the server says 404."""
        try:
            return self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def logs(self) -> str:
        return f"--- kube-apiserver\n{self.apiserver.log_text()[-6000:]}\n--- etcd\n{self.etcd.log_text()[-3000:]}"


def _wait(process: ManagedProcess, probe: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not process.running():
            raise ProcessFailed(f"{process.name} exited with {process.returncode()}:\n{process.log_text()[-6000:]}")
        try:
            if probe():
                return
        except (OSError, requests.RequestException):
            pass
        if time.monotonic() > deadline:
            raise ProcessFailed(f"{what} not ready within {timeout} s:\n{process.log_text()[-6000:]}")
        time.sleep(0.2)


def _kubeconfig(path: Path, url: str, certs: Certificates) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": url, "certificate-authority": str(certs.ca)}}],
        "users": [
            {
                "name": "test",
                "user": {"client-certificate": str(certs.client_cert), "client-key": str(certs.client_key)},
            }
        ],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


@contextmanager
def running_control_plane(
    etcd_binary: str,
    apiserver_binary: str,
    workdir: Path,
    *,
    service_cluster_ip_range: str = SERVICE_CLUSTER_IP_RANGE,
) -> Iterator[ControlPlane]:
    """etcd and kube-apiserver on free loopback ports, ready (/readyz) on entry, stopped and waited for on exit."""
    certs = make_certificates(workdir / "pki")
    client_port, peer_port, api_port = free_port(), free_port(), free_port()
    client_url, peer_url = f"http://{LOOPBACK}:{client_port}", f"http://{LOOPBACK}:{peer_port}"
    etcd = ManagedProcess(
        "etcd",
        [
            etcd_binary,
            "--name=test",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=test={peer_url}",
            "--initial-cluster-state=new",
        ],
        log_path=workdir / "etcd.log",
    )
    url = f"https://{LOOPBACK}:{api_port}"
    apiserver = ManagedProcess(
        "kube-apiserver",
        [
            apiserver_binary,
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={api_port}",
            f"--etcd-servers={client_url}",
            f"--cert-dir={workdir / 'apiserver-certs'}",
            f"--tls-cert-file={certs.server_cert}",
            f"--tls-private-key-file={certs.server_key}",
            f"--client-ca-file={certs.ca}",
            f"--service-account-issuer={url}",
            f"--service-account-key-file={certs.sa_public}",
            f"--service-account-signing-key-file={certs.sa_private}",
            f"--service-cluster-ip-range={service_cluster_ip_range}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            # No controller makes service account tokens here (as in envtest).
            "--disable-admission-plugins=ServiceAccount",
            # Nothing to reconcile the `kubernetes` Service's endpoints towards: no node, no other apiserver.
            "--endpoint-reconciler-type=none",
            # Debian's etcd (3.4.23) predates the progress notifications that consistent reads from the watch cache
            # wait for (etcd >= 3.4.31 / 3.5.13): with the cache on, every list times out with "Too large resource
            # version". Without it, reads go to etcd, as they did before Kubernetes 1.31.
            "--watch-cache=false",
        ],
        log_path=workdir / "kube-apiserver.log",
    )
    plane = ControlPlane(url=url, certs=certs, kubeconfig=workdir / "kubeconfig", etcd=etcd, apiserver=apiserver)
    try:
        etcd.start()
        _wait(etcd, lambda: requests.get(f"{client_url}/health", timeout=2).json().get("health") == "true", "etcd", 60)
        apiserver.start()

        def ready() -> bool:
            with plane.session() as session:
                return session.get(f"{url}/readyz", timeout=5).status_code == 200

        _wait(apiserver, ready, "kube-apiserver", 180)
        _kubeconfig(plane.kubeconfig, url, certs)
        yield plane
    finally:
        apiserver.stop(30)
        etcd.stop(30)


# --- CustomResourceDefinitions from the JSON schemas in helm/schemas -------------------------------------------------


def _structural(node: Any) -> Any:
    """A draft-07 schema of helm/schemas as a structural OpenAPI v3 schema for a CRD.

    `additionalProperties: false` goes (the API server prunes unknown fields instead; the tests compare what it
    stored with what helm rendered, so a pruned field still fails them); `anyOf` of integer and string becomes
    int-or-string, as in the upstream CRDs; an enum of strings gets `type: string`; `$schema` goes.
    """
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$schema" or (key == "additionalProperties" and value is False):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {name: _structural(schema) for name, schema in value.items()}
        else:
            out[key] = _structural(value)
    enum = node.get("enum")
    if "type" not in node and isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        out["type"] = "string"  # structural schemas need a type where JSON schema lets an enum imply it
    any_of = node.get("anyOf")
    if (
        "type" not in node
        and isinstance(any_of, list)
        and {json.dumps(s) for s in any_of}
        == {
            '{"type": "integer"}',
            '{"type": "string"}',
        }
    ):
        out["x-kubernetes-int-or-string"] = True
    return out


def crd_from_schema(schema_file: Path) -> dict[str, Any]:
    """A namespaced CustomResourceDefinition whose spec is validated by the schema in `schema_file`."""
    schema = json.loads(schema_file.read_text())
    api_version: str = schema["properties"]["apiVersion"]["enum"][0]
    kind: str = schema["properties"]["kind"]["enum"][0]
    group, version = api_version.split("/")
    plural = kind.lower() + "s"
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
    }
    properties["spec"] = _structural(schema["properties"]["spec"])
    properties["status"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "required": ["spec"], "properties": properties}},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def apply_crds(plane: ControlPlane, schema_files: list[Path], *, timeout: float = 60.0) -> list[str]:
    """Creates a CRD per schema file and waits until each is Established; returns their names."""
    names = []
    for schema_file in schema_files:
        crd = crd_from_schema(schema_file)
        plane.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        names.append(crd["metadata"]["name"])
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            stored = plane.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
            conditions = {c["type"]: c["status"] for c in stored.get("status", {}).get("conditions", [])}
            if conditions.get("Established") == "True":
                break
            if conditions.get("NamesAccepted") == "False" or time.monotonic() > deadline:
                raise AssertionError(f"CRD {name} not established: {stored.get('status')}\n{plane.logs()}")
            time.sleep(0.2)
    return names
