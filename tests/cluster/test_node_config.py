"""Unit tests of what tests/cluster/node.py writes before it starts anything (make test-fast runs these)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import yaml

from tests.cluster import node
from tests.helm.control_plane import ControlPlane


def _plane(tmp_path: Path) -> ControlPlane:
    return cast(
        ControlPlane, SimpleNamespace(certs=SimpleNamespace(ca=tmp_path / "ca.crt"), kubeconfig=tmp_path / "kc")
    )


def test_the_pause_archive_is_an_oci_layout_whose_digests_match(tmp_path: Path) -> None:
    binary = tmp_path / "kube-pause"
    binary.write_bytes(b"\x7fELF not really")
    archive = node.pause_archive(binary, tmp_path / "pause.oci.tar", node.PAUSE_IMAGE)
    with tarfile.open(archive) as layout:
        files = {m.name: cast(io.BufferedReader, layout.extractfile(m)).read() for m in layout.getmembers()}

    def blob(descriptor: dict[str, Any]) -> bytes:
        algorithm, digest = descriptor["digest"].split(":")
        data = files[f"blobs/{algorithm}/{digest}"]
        assert hashlib.sha256(data).hexdigest() == digest
        assert len(data) == descriptor["size"]
        return data

    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == node.PAUSE_IMAGE
    manifest = json.loads(blob(entry))
    config = json.loads(blob(manifest["config"]))
    assert config["config"] == {"Entrypoint": ["/pause"], "User": "65535:65535"}
    (layer_descriptor,) = manifest["layers"]
    layer_tar = gzip.decompress(blob(layer_descriptor))
    # The config's diff_id is the digest of the uncompressed layer.
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(layer_tar)) as layer:
        (member,) = layer.getmembers()
        assert (member.name, member.mode, member.uid) == ("pause", 0o755, 0)
        assert cast(io.BufferedReader, layer.extractfile(member)).read() == binary.read_bytes()


def test_containerd_uses_runc_the_cni_plugins_and_clamps_oom_scores(tmp_path: Path) -> None:
    config = tomllib.loads(node._containerd_config(tmp_path).read_text())
    assert config["grpc"]["address"].startswith(str(node.STATE_DIR))
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    # No CAP_SYS_RESOURCE here: a negative oom_score_adj makes runc's create fail.
    assert runtime["restrict_oom_score_adj"] is True
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runc["options"]["BinaryName"] == "/usr/sbin/runc"
    assert runc["options"]["SystemdCgroup"] is False
    assert runtime["cni"]["bin_dirs"] == [node.CNI_BIN]
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == node.PAUSE_IMAGE
    assert config["plugins"]["io.containerd.grpc.v1.cri"]["stream_server_address"] == "127.0.0.1"


def test_the_kubelet_accepts_cgroup_v1_and_binds_no_public_address(tmp_path: Path) -> None:
    config = yaml.safe_load(node._kubelet_config(tmp_path, _plane(tmp_path), 1, 2).read_text())
    assert config["failCgroupV1"] is False
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["oomScoreAdj"] == 0
    assert config["address"] == node.GATEWAY
    assert config["healthzBindAddress"] == "127.0.0.1"
    assert config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"]["enabled"] is False


def test_the_bridge_masquerades_nothing_and_kube_proxy_binds_the_bridge(tmp_path: Path) -> None:
    (bridge, portmap) = json.loads((node._cni_config(tmp_path) / "10-email-ingest.conflist").read_text())["plugins"]
    assert (bridge["type"], bridge["bridge"], bridge["ipMasq"]) == ("bridge", node.BRIDGE, False)
    assert bridge["ipam"]["ranges"] == [[{"subnet": node.POD_SUBNET, "gateway": node.GATEWAY}]]
    assert portmap["type"] == "portmap"
    proxy = yaml.safe_load(node._kube_proxy_config(tmp_path, _plane(tmp_path), 1, 2).read_text())
    assert proxy["mode"] == "iptables"
    assert proxy["iptables"]["masqueradeAll"] is False
    assert proxy["nodePortAddresses"] == [f"{node.GATEWAY}/32"]
    assert proxy["healthzBindAddress"].startswith("127.0.0.1:")


def test_a_host_that_cannot_run_the_node_fails_make_test_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.cluster.test_cluster import _unavailable

    monkeypatch.setenv("EMAIL_INGEST_REQUIRE_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match="needs root"):
        _unavailable("needs root")
    monkeypatch.delenv("EMAIL_INGEST_REQUIRE_TOOLS")
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        _unavailable("needs root")


def test_this_host_can_run_the_node_or_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert "needs root" in (node.host_problem() or "")
