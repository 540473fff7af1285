"""Builds the two images from docker/*.Dockerfile as they are, without a Docker engine: the one builder of the images.

Used by tests/images/test_images.py, and by any later test that needs the images (a Kubernetes node, say):

    from tests.images.build import build_images
    built = build_images(archive_dir=ARCHIVE_DIR)   # {"api": BuiltImage, "consumer": BuiltImage}

or from a shell, which also writes both as OCI archives (`<service>.oci.tar`) to ``ARCHIVE_DIR``
(``$EMAIL_INGEST_TOOLS_DIR/containers/images/<TAG>``, TAG naming the checkout) and prints their paths:

    .venv/bin/python -m tests.images.build

How, with what scripts/tools/install-containers.sh installs:

- buildah builds (``bud --layers``: an unchanged step is reused from the store, so a rebuild after a code change
  redoes only the steps from that COPY on), in the project's own store under the tools directory, with runc
  (``CONTAINERS_CONF`` and ``CONTAINERS_STORAGE_CONF`` name the two files the installer wrote).
- No registry is reachable, so the digest-pinned ``FROM`` of both stages is substituted with
  ``--build-context '<that reference>=container-image://<the stand-in base>'``: a Debian bookworm root with Debian's
  Python, 3.11.2 under /usr (linked from /usr/local/bin), where the real base has CPython 3.11.x under /usr/local.
- The build has no network (``--network=none``). pip in the build stage reads its configuration from
  ``/root/.config/pip/pip.conf`` (``no-index``, ``find-links``), a read-only bind of ``PIP_HOME`` over the build's
  /root, beside the wheels of both locks, downloaded once on this machine with the locks' hashes checked; the
  Dockerfile's own ``--require-hashes`` checks them again inside. /root exists in every base, so the bind leaves no
  mount point behind in the image (one at /etc/pip.conf would).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from devstack.tools import find_tool, search_path, tools_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "consumer")
CONTAINERS_DIR = tools_dir() / "containers"
CONTAINERS_CONF = CONTAINERS_DIR / "containers.conf"
STORAGE_CONF = CONTAINERS_DIR / "storage.conf"
BASE_ARCHIVE = CONTAINERS_DIR / "base.oci.tar"
BASE_IMAGE = "localhost/email-ingest-base:bookworm-python3.11"
PIP_HOME = CONTAINERS_DIR / "pip-home"
WHEELS = PIP_HOME / "wheels"
TOOLS = ("buildah", "podman")
# One tag (and archive folder) per checkout: worktrees of one machine share the store and its layer cache, but
# none of them tests, replaces or removes another's images.
TAG = "test-" + hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:10]
ARCHIVE_DIR = CONTAINERS_DIR / "images" / TAG
PIP_CONF = "[global]\nno-index = true\nfind-links = /root/wheels\n"


class BuildError(RuntimeError):
    """A step of the build failed; the message holds its command and output."""


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    service: str
    reference: str  # e.g. localhost/email-ingest-api:test, in the project's container store
    image_id: str
    size_bytes: int  # uncompressed, as podman counts it (the sum of its layers)
    build_seconds: float
    archive: Path | None  # <service>.oci.tar when asked for


def image_reference(service: str) -> str:
    return f"localhost/email-ingest-{service}:{TAG}"


def dockerfile(service: str) -> Path:
    return REPO_ROOT / "docker" / f"{service}.Dockerfile"


def missing() -> str | None:
    """What is not installed for a build, or None."""
    if os.geteuid() != 0:
        # Verified rootful only (as .ci/run and make test run here): rootless podman would need subordinate ids, a
        # systemd cgroup manager for --memory, and debootstrap needs root anyway.
        return "building and running the images needs root (rootful buildah and podman)"
    absent = [tool for tool in TOOLS if find_tool(tool) is None]
    absent += [str(path) for path in (CONTAINERS_CONF, STORAGE_CONF, BASE_ARCHIVE) if not path.is_file()]
    if absent:
        return f"{', '.join(absent)} missing: run scripts/tools/install-containers.sh (make tools)"
    return None


def container_env() -> dict[str, str]:
    """The environment of every buildah and podman call: the project's configuration and store."""
    return {
        **os.environ,
        "PATH": search_path(),
        "CONTAINERS_CONF": str(CONTAINERS_CONF),
        "CONTAINERS_STORAGE_CONF": str(STORAGE_CONF),
    }


def run(args: Sequence[str], *, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        list(args), env=container_env(), capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO_ROOT
    )
    if check and completed.returncode != 0:
        raise BuildError(
            f"{' '.join(args)} exited {completed.returncode}\n--- stdout\n{completed.stdout[-4000:]}\n"
            f"--- stderr\n{completed.stderr[-8000:]}"
        )
    return completed


def base_reference(service: str) -> str:
    """The one FROM reference of both stages (tests/ci/test_dockerfiles.py holds them to one pinned base)."""
    froms = {
        line.split()[1]
        for line in dockerfile(service).read_text(encoding="utf-8").splitlines()
        if line.upper().startswith("FROM ")
    }
    if len(froms) != 1:
        raise BuildError(f"{dockerfile(service)}: expected one base for both stages, found {sorted(froms)}")
    return froms.pop()


@contextlib.contextmanager
def shared_lock() -> Iterator[None]:
    """One checkout at a time loads the base or fills the wheelhouse (both shared by every checkout)."""
    CONTAINERS_DIR.mkdir(parents=True, exist_ok=True)
    with (CONTAINERS_DIR / "build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_base() -> None:
    """The stand-in base in the store, loaded from the installer's OCI archive when it is not there."""
    if run(["podman", "image", "exists", BASE_IMAGE], check=False).returncode != 0:
        run(["podman", "load", "--quiet", "--input", str(BASE_ARCHIVE)])
        run(["podman", "image", "exists", BASE_IMAGE])


def ensure_wheels() -> None:
    """Every wheel of both locks in WHEELS, hash-checked; skipped when the locks are those of the last fill."""
    locks = [REPO_ROOT / "requirements" / f"{service}.lock" for service in SERVICES]
    digest = hashlib.sha256(b"".join(lock.read_bytes() for lock in locks)).hexdigest()[:16]
    stamp = WHEELS / ".locks"
    (PIP_HOME / ".config" / "pip").mkdir(parents=True, exist_ok=True)
    (PIP_HOME / ".config" / "pip" / "pip.conf").write_text(PIP_CONF, encoding="utf-8")
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == digest:
        return
    # The wheels are those of this interpreter's platform, which must be the image's: CPython 3.11 on Linux.
    if sys.version_info[:2] != (3, 11) or sys.platform != "linux":
        raise BuildError(f"the wheels are fetched for this interpreter: needs CPython 3.11 on Linux, not {sys.version}")
    WHEELS.mkdir(parents=True, exist_ok=True)
    for lock in locks:
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        pip += ["--no-deps", "--only-binary=:all:", "--require-hashes", "--dest", str(WHEELS), "-r", str(lock)]
        run(pip)
    stamp.write_text(digest, encoding="utf-8")


def image_id(reference: str) -> str | None:
    completed = run(["podman", "image", "inspect", "--format", "{{.Id}}", reference], check=False)
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None


def build(service: str) -> BuiltImage:
    """One image, tagged image_reference(service); the image it replaces is removed (its layers stay as cache)."""
    reference = image_reference(service)
    previous = image_id(reference)
    base = base_reference(service)
    started = time.monotonic()
    run(
        [
            "buildah",
            "bud",
            "--quiet",
            "--layers",
            "--force-rm",
            "--pull=never",
            "--network=none",
            f"--build-context={base}=container-image://{BASE_IMAGE}",
            f"--volume={PIP_HOME}:/root:ro",
            f"--file={dockerfile(service)}",
            f"--tag={reference}",
            str(REPO_ROOT),
        ],
        timeout=900,
    )
    seconds = time.monotonic() - started
    built = image_id(reference)
    if built is None:
        raise BuildError(f"{reference} is not in the store after its build")
    if previous and previous != built:
        run(["podman", "rmi", previous], check=False)  # still used as a cache parent: then it stays
    size = json.loads(run(["podman", "image", "inspect", reference]).stdout)[0]["Size"]
    return BuiltImage(service, reference, built, int(size), seconds, None)


def write_archive(image: BuiltImage, directory: Path) -> BuiltImage:
    """`<service>.oci.tar` (an OCI archive named after the reference), rewritten only when the image changed."""
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / f"{image.service}.oci.tar"
    stamp = directory / f"{image.service}.id"
    if not (archive.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8") == image.image_id):
        partial = archive.with_suffix(".tmp")
        partial.unlink(missing_ok=True)
        run(["podman", "save", "--quiet", "--format=oci-archive", f"--output={partial}", image.reference])
        partial.replace(archive)
        stamp.write_text(image.image_id, encoding="utf-8")
    return dataclasses.replace(image, archive=archive)


def build_images(archive_dir: Path | None = None) -> dict[str, BuiltImage]:
    """Both images, built (or found unchanged in the layer cache) from the working tree; OCI archives if asked."""
    problem = missing()
    if problem:
        raise BuildError(problem)
    if platform.machine() not in {"x86_64", "aarch64"}:
        raise BuildError(f"unsupported machine {platform.machine()}")
    with shared_lock():
        ensure_base()
        ensure_wheels()
    built = {service: build(service) for service in SERVICES}
    if archive_dir is not None:
        built = {service: write_archive(image, archive_dir) for service, image in built.items()}
    return built


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--archive-dir", type=Path, default=ARCHIVE_DIR, help=f"default {ARCHIVE_DIR}")
    args = parser.parse_args(argv)
    try:
        built = build_images(args.archive_dir)
    except BuildError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    for image in built.values():
        sys.stdout.write(
            f"{image.reference} {image.image_id[:12]} {image.size_bytes / 1e6:.1f} MB "
            f"built in {image.build_seconds:.1f} s -> {image.archive}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
