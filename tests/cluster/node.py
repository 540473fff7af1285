"""A single-node Kubernetes cluster on this machine, for tests/cluster (issue 27).

On top of tests/helm/control_plane.py (etcd + kube-apiserver on 127.0.0.1): kube-controller-manager and
kube-scheduler (127.0.0.1), containerd 2.x with runc, the kubelet and kube-proxy (iptables mode; no IPVS here), all
from scripts/tools/install-kube-apiserver.sh and install-kube-node.sh. Pods get their network namespaces from
Debian's CNI plugins (bridge, host-local, loopback, portmap) on a bridge this module creates, with no masquerade;
two FORWARD rules drop anything between the bridge and any other interface, so nothing a pod sends is routed beyond
it. The Service IPs come from a subnet routed onto the bridge, and an OUTPUT rule refuses any packet to them that
kube-proxy has not rewritten to a pod (a Service before kube-proxy's first sync, or one without pods): without both,
such a packet took the host's default route off the machine (seen in CI: a 404 from a server on the way out).
Everything is removed on exit, also on failure: pods, containers and shims, mounts, cgroups, the bridge and its
routes, every KUBE-* iptables chain and our rules, the sysctls the kubelet sets.
One node at a time on a machine (a lock): kube-proxy's chains are global to the host's network namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devstack.processes import LOOPBACK, ManagedProcess, free_port
from tests.helm.control_plane import ControlPlane, running_control_plane

BRIDGE = "eik-br0"
POD_SUBNET = "10.213.0.0/24"
GATEWAY = "10.213.0.1"
# Beside the pods' subnet, never on any interface: only kube-proxy's DNAT rules lead anywhere from it.
SERVICE_SUBNET = "10.213.1.0/24"
NODE_NAME = "email-ingest-node"
STATE_DIR = Path("/run/eik-node")  # short: unix socket paths are limited to 108 bytes
CGROUP_ROOT = "email-ingest-node"
CGROUP_FS = Path("/sys/fs/cgroup")
PAUSE_IMAGE = "localhost/email-ingest-pause:1"
CNI_BIN = "/usr/lib/cni"
RULE_COMMENT = "email-ingest-node: nothing leaves the bridge"
# The sysctls the kubelet sets when protectKernelDefaults is false (restored on exit).
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# Paths the kubelet and containerd use whatever they are told (the device plugins' socket, the shims' sockets):
# removed when empty on exit, deepest first (so nothing of another program's goes with them).
KUBELET_SOCKET = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
HOST_DIRS = (
    Path("/var/lib/kubelet/device-plugins"),
    Path("/var/lib/kubelet"),
    Path("/run/containerd/s"),
    Path("/run/containerd"),
)
BINARIES = ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "containerd", "ctr", "kube-pause")


class NodeError(RuntimeError):
    pass


def sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and completed.returncode != 0:
        raise NodeError(f"{' '.join(args)} exited {completed.returncode}: {completed.stderr[-3000:]}")
    return completed


def wait_for(condition: Callable[[], Any], what: str, timeout: float, *, interval: float = 0.5) -> Any:
    """Polls `condition` until it returns something truthy; NodeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise NodeError(f"{what} not within {timeout} s" + (f" (last error: {last})" if last else ""))


# --- the pause image: an OCI archive made here (no registry) ----------------------------------------------------


def _blob(layout: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    layout.addfile(info, io.BytesIO(data))
    return f"sha256:{digest}"


def pause_archive(binary: Path, archive: Path, reference: str) -> Path:
    """An OCI image archive holding only `binary` as /pause, its entrypoint, run as 65535."""
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w") as layer:
        info = layer.gettarinfo(str(binary), arcname="pause")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o755
        with binary.open("rb") as handle:
            layer.addfile(info, handle)
    diff_id = "sha256:" + hashlib.sha256(layer_tar.getvalue()).hexdigest()
    layer_gz = gzip.compress(layer_tar.getvalue(), mtime=0)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    with tarfile.open(archive, "w") as layout:
        config_bytes = json.dumps(config).encode()
        layer_digest = _blob(layout, layer_gz)
        config_digest = _blob(layout, config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": len(layer_gz),
                }
            ],
        }
        manifest_bytes = json.dumps(manifest).encode()
        manifest_digest = _blob(layout, manifest_bytes)
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest_bytes),
                    "annotations": {"io.containerd.image.name": reference, "org.opencontainers.image.ref.name": "1"},
                }
            ],
        }
        for name, data in (
            ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            ("index.json", json.dumps(index).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            layout.addfile(info, io.BytesIO(data))
    return archive


# --- the node ---------------------------------------------------------------------------------------------------


@dataclass
class Node:
    plane: ControlPlane
    workdir: Path
    tools: dict[str, str]
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def containerd_socket(self) -> Path:
        return STATE_DIR / "containerd.sock"

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return sh(self.tools["ctr"], "--address", str(self.containerd_socket), "-n", "k8s.io", *args, timeout=timeout)

    def import_image(self, archive: Path) -> None:
        """Loads an OCI archive into containerd's k8s.io namespace (CRI's), unpacked for overlayfs; the image is
        named by its index's annotations (io.containerd.image.name, else org.opencontainers.image.ref.name)."""
        self.ctr("images", "import", str(archive))

    def tag_image(self, source: str, target: str) -> None:
        self.ctr("images", "tag", "--force", source, target)

    def logs(self) -> str:
        parts = [self.plane.logs()]
        for name, process in self.processes.items():
            parts.append(f"--- {name}\n{process.log_text()[-4000:]}")
        return "\n".join(parts)

    def pod_logs(self) -> str:
        return "\n".join(
            f"--- {path.relative_to(self.workdir)}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted((self.workdir / "pod-logs").glob("*/*/*.log"))
        )


def _cni_config(workdir: Path) -> Path:
    folder = workdir / "cni" / "net.d"
    folder.mkdir(parents=True, exist_ok=True)
    conflist = {
        "cniVersion": "0.4.0",
        "name": "email-ingest-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(workdir / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (folder / "10-email-ingest.conflist").write_text(json.dumps(conflist, indent=2))
    return folder


def _containerd_config(workdir: Path) -> Path:
    root = workdir / "containerd"
    config = f"""version = 3
root = "{root / "root"}"
state = "{STATE_DIR / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile"]

[grpc]
  address = "{STATE_DIR / "containerd.sock"}"

[ttrpc]
  address = "{STATE_DIR / "containerd.sock.ttrpc"}"

[debug]
  address = ""

[metrics]
  address = ""

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '{PAUSE_IMAGE}'
  [plugins.'io.containerd.cri.v1.runtime']
    enable_unprivileged_ports = false
    enable_unprivileged_icmp = false
    netns_mounts_under_state_dir = true
    # The sandbox this runs in has no CAP_SYS_RESOURCE: the kubelet's negative OOM score adjustments (-998 for
    # every pod sandbox) would fail runc's create ("can't get final child's PID from pipe: EOF"). Clamped to
    # containerd's own (0) instead.
    restrict_oom_score_adj = true
    tolerate_missing_hugetlb_controller = true
    disable_hugetlb_controller = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '/usr/sbin/runc'
          Root = '{STATE_DIR / "runc"}'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['{CNI_BIN}']
      conf_dir = '{workdir / "cni" / "net.d"}'
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '{LOOPBACK}'
    stream_server_port = '0'
"""
    path = workdir / "containerd.toml"
    path.write_text(config)
    return path


def _kubelet_config(workdir: Path, plane: ControlPlane, healthz_port: int, port: int) -> Path:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This host is cgroup v1 (hybrid); kubelet 1.35+ refuses it unless told (tooling notes 2026-12-06).
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{CGROUP_ROOT}",
        "address": GATEWAY,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": LOOPBACK,
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(plane.certs.ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{STATE_DIR / 'containerd.sock'}",
        "failSwapOn": False,
        "podLogsDir": str(workdir / "pod-logs"),
        "registerNode": True,
        "serializeImagePulls": False,
        # A busy shared disk must not evict the test's pods.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "makeIPTablesUtilChains": False,
        "enforceNodeAllocatable": ["pods"],
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
        "nodeStatusUpdateFrequency": "5s",
        "rotateCertificates": False,
        # Without CAP_SYS_RESOURCE (see the containerd config) the kubelet cannot lower its own score (-999).
        "oomScoreAdj": 0,
        "serverTLSBootstrap": False,
        "resolvConf": str(workdir / "resolv.conf"),
    }
    (workdir / "resolv.conf").write_text("")  # no DNS for the pods: they reach AWS by address
    path = workdir / "kubelet.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _kube_proxy_config(workdir: Path, plane: ControlPlane, healthz_port: int, metrics_port: int) -> Path:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(plane.kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": GATEWAY,
        "healthzBindAddress": f"{LOOPBACK}:{healthz_port}",
        "metricsBindAddress": f"{LOOPBACK}:{metrics_port}",
        "clusterCIDR": POD_SUBNET,
        "nodePortAddresses": [f"{GATEWAY}/32"],
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False, "syncPeriod": "30s", "minSyncPeriod": "0s"},
        # 0: leave the host's conntrack settings as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "oomScoreAdj": 0,
    }
    path = workdir / "kube-proxy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# --- cleanup ----------------------------------------------------------------------------------------------------


def _cgroup_dirs() -> list[Path]:
    found: list[Path] = []
    for controller in CGROUP_FS.iterdir():
        top = controller / CGROUP_ROOT
        if top.is_dir():
            found += sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            found.append(top)
    return found


def _kill_cgroup_processes() -> None:
    for directory in _cgroup_dirs():
        procs = directory / "cgroup.procs"
        with contextlib.suppress(OSError):
            for line in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(line), signal.SIGKILL)


def _remove_cgroups() -> None:
    deadline = time.monotonic() + 20
    while _cgroup_dirs() and time.monotonic() < deadline:
        _kill_cgroup_processes()
        for directory in _cgroup_dirs():
            with contextlib.suppress(OSError):
                directory.rmdir()
        time.sleep(0.2)


def _shim_pids() -> list[int]:
    """containerd-shim-runc-v2 processes of this node (they outlive containerd), by their -address argument."""
    marker = str(STATE_DIR).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes()
            if b"containerd-shim" in cmdline and marker in cmdline:
                found.append(int(proc.name))
    return found


def _kill_shims() -> None:
    for pid in _shim_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _unmount_under(*roots: Path) -> None:
    prefixes = tuple(str(root) for root in roots)
    for _ in range(3):
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        ours = sorted({m for m in mounts if m.startswith(prefixes)}, key=len, reverse=True)
        if not ours:
            return
        for mount in ours:
            sh("umount", "-l", mount, check=False)


def _iptables_cleanup() -> None:
    """Every rule jumping to a KUBE-* chain, and those chains, in filter, nat and mangle; our FORWARD rules."""
    for table in ("filter", "nat", "mangle"):
        rules = sh("iptables", "-w", "-t", table, "-S", check=False).stdout.splitlines()
        for rule in rules:
            if rule.startswith("-A ") and (" -j KUBE-" in rule or RULE_COMMENT in rule):
                chain = rule.split()[1]
                if not chain.startswith("KUBE-"):
                    sh("sh", "-c", f"iptables -w -t {table} -D {rule[3:]}", check=False)
        chains = [r.split()[1] for r in rules if r.startswith("-N KUBE-")]
        for chain in chains:
            sh("iptables", "-w", "-t", table, "-F", chain, check=False)
        for chain in chains:
            sh("iptables", "-w", "-t", table, "-X", chain, check=False)


def leftovers(workdir: Path | None = None) -> list[str]:
    """What this node would have left on the machine (empty after a clean exit)."""
    found = []
    if sh("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        found.append(f"bridge {BRIDGE}")
    found += [f"route {r}" for r in sh("ip", "route", "show", SERVICE_SUBNET, check=False).stdout.splitlines()]
    for table in ("filter", "nat", "mangle"):
        rules = sh("iptables", "-w", "-t", table, "-S", check=False).stdout
        found += [f"{table}: {r}" for r in rules.splitlines() if "KUBE-" in r or RULE_COMMENT in r]
    found += [f"cgroup {p}" for p in _cgroup_dirs()]
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line.split()[4]}" for line in mounts.splitlines() if str(STATE_DIR) in line.split()[4]]
    if workdir is not None:
        found += [f"mount {line.split()[4]}" for line in mounts.splitlines() if str(workdir) in line.split()[4]]
    found += [f"socket {KUBELET_SOCKET}"] if KUBELET_SOCKET.exists() else []
    found += [f"directory {STATE_DIR}"] if STATE_DIR.exists() else []
    found += [f"process {pid}" for pid in _shim_pids()]
    return found


# --- start ------------------------------------------------------------------------------------------------------


def host_problem() -> str | None:
    """Why this host cannot run the node as this module makes it, or None."""
    if os.geteuid() != 0:
        return "the single-node cluster needs root (a bridge, iptables rules, cgroups, mounts)"
    if (CGROUP_FS / "cgroup.controllers").exists():
        # Only cgroup v1 (hybrid, as on the machines .ci/run runs on) is made and cleaned up here.
        return f"{CGROUP_FS} is cgroup v2 (unified): tests/cluster/node.py makes cgroup v1 hierarchies only"
    return None


def _network_up() -> None:
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    # On the bridge, not the default route: whatever the OUTPUT rule below lets by still cannot leave the machine.
    sh("ip", "route", "add", SERVICE_SUBNET, "dev", BRIDGE)
    _confine()


def _confine() -> None:
    """First in their chains, also before kube-proxy's: nothing forwarded between the bridge and another interface,
    and nothing sent to a Service IP unless kube-proxy rewrote it to a pod (filter's OUTPUT sees packets after nat's,
    so only the unrewritten ones still have a Service IP as their destination)."""
    rules = (
        ("FORWARD", ["-i", BRIDGE, "!", "-o", BRIDGE], "DROP"),
        ("FORWARD", ["-o", BRIDGE, "!", "-i", BRIDGE], "DROP"),
        ("OUTPUT", ["-d", SERVICE_SUBNET], "REJECT"),
    )
    for chain, args, target in rules:
        rule = [*args, "-m", "comment", "--comment", RULE_COMMENT, "-j", target]
        while sh("iptables", "-w", "-D", chain, *rule, check=False).returncode == 0:
            pass
        sh("iptables", "-w", "-I", chain, "1", *rule)


def _cgroups_up() -> None:
    for controller in CGROUP_FS.iterdir():
        if controller.name == "unified" or not (controller / "cgroup.procs").exists():
            continue
        top = controller / CGROUP_ROOT
        top.mkdir(exist_ok=True)
        if controller.name == "cpuset":
            for name in ("cpuset.cpus", "cpuset.mems"):
                (top / name).write_text((controller / name).read_text())


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    STATE_DIR.parent.mkdir(parents=True, exist_ok=True)
    with open("/run/email-ingest-node.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NodeError("another email-ingest node runs on this machine (/run/email-ingest-node.lock)") from None
        yield


@contextlib.contextmanager
def running_node(tools: dict[str, str], workdir: Path) -> Iterator[Node]:
    """A Ready node on entry; everything it made removed on exit (also on failure)."""
    with _machine_lock():
        sysctls = {key: Path("/proc/sys", key).read_text() for key in KUBELET_SYSCTLS}
        # A previous run killed hard: clear what it left before starting.
        _teardown(None, workdir, sysctls=None)
        control_plane = running_control_plane(
            tools["etcd"], tools["kube-apiserver"], workdir / "control-plane", service_cluster_ip_range=SERVICE_SUBNET
        )
        with control_plane as plane:
            node = Node(plane, workdir, tools)
            try:
                _start(node)
                yield node
            finally:
                _teardown(node, workdir, sysctls=sysctls)


def _start(node: Node) -> None:
    workdir, plane, tools = node.workdir, node.plane, node.tools
    _network_up()
    _cgroups_up()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    _cni_config(workdir)

    def process(name: str, args: list[str]) -> ManagedProcess:
        managed = ManagedProcess(name, args, log_path=workdir / f"{name}.log")
        node.processes[name] = managed
        managed.start()
        return managed

    containerd = process("containerd", [tools["containerd"], "--config", str(_containerd_config(workdir))])
    wait_for(lambda: containerd.running() and node.ctr("version", timeout=10), "containerd", 60)
    node.import_image(pause_archive(Path(tools["kube-pause"]), workdir / "pause.oci.tar", PAUSE_IMAGE))

    kubeconfig = str(plane.kubeconfig)

    def component_flags() -> list[str]:
        """What the controller-manager and the scheduler both take: the plane, a loopback port, no election."""
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
        ]

    process(
        "kube-controller-manager",
        [
            tools["kube-controller-manager"],
            *component_flags(),
            f"--service-account-private-key-file={plane.certs.sa_private}",
            f"--root-ca-file={plane.certs.ca}",
            "--use-service-account-credentials=false",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
            f"--cert-dir={workdir / 'kcm-certs'}",
        ],
    )
    process(
        "kube-scheduler",
        [
            tools["kube-scheduler"],
            *component_flags(),
            f"--cert-dir={workdir / 'scheduler-certs'}",
        ],
    )
    kubelet_config = _kubelet_config(workdir, plane, free_port(), free_port())
    process(
        "kubelet",
        [
            tools["kubelet"],
            f"--config={kubelet_config}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={workdir / 'kubelet'}",
            f"--cert-dir={workdir / 'kubelet-certs'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={GATEWAY}",
            "--v=1",
        ],
    )
    process(
        "kube-proxy",
        [tools["kube-proxy"], f"--config={_kube_proxy_config(workdir, plane, free_port(), free_port())}", "--v=1"],
    )

    def ready() -> bool:
        for managed in node.processes.values():
            if not managed.running():
                raise NodeError(f"{managed.name} exited {managed.returncode()}:\n{managed.log_text()[-6000:]}")
        stored = plane.get(f"/api/v1/nodes/{NODE_NAME}") or {}
        conditions = {c["type"]: c["status"] for c in stored.get("status", {}).get("conditions", [])}
        return conditions.get("Ready") == "True"

    try:
        wait_for(ready, f"node {NODE_NAME} Ready", 180)
    except NodeError as exc:
        raise NodeError(f"{exc}\n{node.logs()}") from exc
    _confine()  # first again, before whatever kube-proxy inserted


def _teardown(node: Node | None, workdir: Path, *, sysctls: dict[str, str] | None) -> None:
    if node is not None:
        # The pods first, gracefully, while the kubelet runs (their SIGTERM drains), bounded.
        with contextlib.suppress(Exception):
            namespaces = node.plane.request("GET", "/api/v1/namespaces")["items"]
            for ns in namespaces:
                name = ns["metadata"]["name"]
                if name.startswith("kube-") or name == "default":
                    continue
                node.plane.request("DELETE", f"/api/v1/namespaces/{name}")

            def no_pods() -> bool:
                return not node.plane.request("GET", "/api/v1/pods")["items"]

            wait_for(no_pods, "pods gone", 60)
        for name in ("kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager"):
            if name in node.processes:
                node.processes[name].stop(20)
        with contextlib.suppress(Exception):
            containers = node.ctr("tasks", "ls", "-q", timeout=20).stdout.split()
            for container in containers:
                node.ctr("tasks", "kill", "-s", "SIGKILL", container, timeout=20)
        if "containerd" in node.processes:
            node.processes["containerd"].stop(20)
        if "kube-proxy" in node.tools:
            sh(node.tools["kube-proxy"], "--cleanup", check=False, timeout=60)
    _kill_shims()
    _kill_cgroup_processes()
    _unmount_under(STATE_DIR, workdir)
    _remove_cgroups()
    _iptables_cleanup()
    # The pods' veths first (their namespaces are gone with the mounts, so normally none is left), then the bridge.
    for link in sh("ip", "-o", "link", "show", "master", BRIDGE, check=False).stdout.splitlines():
        sh("ip", "link", "del", link.split(":")[1].strip().split("@")[0], check=False)
    sh("ip", "link", "del", BRIDGE, check=False)  # its routes, the Service subnet's included, go with it
    with contextlib.suppress(OSError):
        KUBELET_SOCKET.unlink(missing_ok=True)
    for directory in HOST_DIRS:
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when empty
    with contextlib.suppress(OSError):
        for path in Path("/var/log/containers").glob("*.log"):
            if path.is_symlink() and str(workdir) in os.readlink(path):
                path.unlink()
    if sysctls:
        for key, value in sysctls.items():
            with contextlib.suppress(OSError):
                Path("/proc/sys", key).write_text(value)
    sh("rm", "-rf", str(STATE_DIR), check=False)
