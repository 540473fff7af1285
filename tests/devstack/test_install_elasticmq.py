"""scripts/tools/install-elasticmq.sh on a machine without Java: it installs Debian's JRE and shows its progress.

apt-get, dpkg, Maven and the JVM are stand-ins (on PATH ahead of a copy of the system's commands without `java`),
so the test runs anywhere, offline, and changes nothing outside its temporary folder.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from devstack.elasticmq import ELASTICMQ_VERSION
from tests.tooling import REPO_ROOT

STAND_INS = {
    # Nothing installed yet.
    "dpkg": "exit 1\n",
    # What apt prints that the installer shows (Need to get, Get:, Setting up) and what it hides; the JRE appears.
    "apt-get": """echo "apt-get $*" >>"$STAND_IN_LOG"
case "$*" in *install*) ;; *) exit 0 ;; esac
[ -n "${APT_FAILS:-}" ] && { echo "E: Unable to locate package default-jre-headless"; exit 100; }
echo "Reading package lists..."
echo "Need to get 43.7 MB of archives."
echo "Get:1 http://deb.debian.org/debian bookworm/main amd64 openjdk-17-jre-headless amd64 17.0.15 [43.7 MB]"
echo "Unpacking openjdk-17-jre-headless:amd64 (17.0.15) ..."
echo "Setting up openjdk-17-jre-headless:amd64 (17.0.15) ..."
echo "Setting up default-jre-headless (2:1.17-74) ..."
printf '#!/bin/sh\\n[ "$1" = -version ] && echo "openjdk version 17 (stand-in)" >&2\\nexit 0\\n' >"$STAND_IN_BIN/java"
chmod +x "$STAND_IN_BIN/java"
""",
    "sudo": 'exec "$@"\n',
    # copy-dependencies: the server jar lands in -DoutputDirectory.
    "mvn": """for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}" ;; esac; done
mkdir -p "$out" && touch "$out/elasticmq-server_2.13-$ELASTICMQ_VERSION.jar" "$out/scala-library.jar"
""",
}


def write_executable(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def system_commands_without(tmp_path: Path, *names: str) -> Path:
    """A folder of links to every command on PATH but `names` (so that `java` is really missing)."""
    farm = tmp_path / "system"
    farm.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not Path(directory).is_dir():
            continue
        for entry in Path(directory).iterdir():
            link = farm / entry.name
            if entry.name in names or link.exists() or link.is_symlink():
                continue
            if entry.is_file() and os.access(entry, os.X_OK):
                link.symlink_to(entry)
    return farm


def run_installer(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    stand_ins = tmp_path / "stand-ins"
    stand_ins.mkdir(exist_ok=True)
    for name, body in STAND_INS.items():
        write_executable(stand_ins / name, body)
    farm = tmp_path / "system"
    if not farm.exists():
        farm = system_commands_without(tmp_path, "java", *STAND_INS)
    env = {
        "PATH": f"{stand_ins}{os.pathsep}{farm}",
        "HOME": str(tmp_path),
        "EMAIL_INGEST_TOOLS_DIR": str(tmp_path / "tools"),
        "STAND_IN_BIN": str(stand_ins),
        "STAND_IN_LOG": str(tmp_path / "calls.log"),
        "ELASTICMQ_VERSION": ELASTICMQ_VERSION,
        **extra,
    }
    return subprocess.run(
        ["bash", str(REPO_ROOT / "scripts/tools/install-elasticmq.sh")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.integration
def test_without_java_it_installs_debians_jre_and_shows_progress(tmp_path: Path) -> None:
    completed = run_installer(tmp_path)
    output = completed.stderr
    assert completed.returncode == 0, completed.stdout + output
    calls = (tmp_path / "calls.log").read_text()
    assert "install -y -q --no-install-recommends default-jre-headless" in calls
    assert "no Java runtime (java) on PATH: installing Debian's default-jre-headless" in output
    assert "[tools]   Need to get 43.7 MB of archives." in output
    assert "[tools]   Get:1 http://deb.debian.org/debian" in output
    assert "[tools]   Setting up default-jre-headless" in output
    assert "Unpacking" not in output and "Reading package lists" not in output, "progress, not apt's whole output"
    assert f"fetching ElasticMQ {ELASTICMQ_VERSION}" in output
    lib = tmp_path / "tools" / "elasticmq" / ELASTICMQ_VERSION / "lib"
    assert (lib / f"elasticmq-server_2.13-{ELASTICMQ_VERSION}.jar").is_file()
    assert f"ElasticMQ {ELASTICMQ_VERSION} installed" in output

    again = run_installer(tmp_path)  # idempotent: java is there now, the jars too
    assert again.returncode == 0, again.stderr
    assert "fetching" not in again.stderr
    assert "default-jre-headless" not in again.stderr


@pytest.mark.integration
def test_a_failed_apt_install_shows_why(tmp_path: Path) -> None:
    completed = run_installer(tmp_path, APT_FAILS="1")
    assert completed.returncode != 0
    assert "apt-get install default-jre-headless failed:" in completed.stderr
    assert "E: Unable to locate package default-jre-headless" in completed.stderr
    assert not (tmp_path / "tools" / "elasticmq" / ELASTICMQ_VERSION).exists()
