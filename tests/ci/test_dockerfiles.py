"""The two images: hadolint, the Dockerfiles' structure, the .dockerignore and what the copied packages import.

These read the Dockerfiles; tests/images builds both images from them (buildah, no Docker engine) and runs them.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest

from tests.tooling import REPO_ROOT, require_tool, run_tool

DOCKER_DIR = REPO_ROOT / "docker"
HADOLINT_CONFIG = DOCKER_DIR / "hadolint.yaml"


@dataclass(frozen=True)
class Image:
    service: str
    package: str
    lock: str
    port: int
    host_var: str
    port_var: str

    @property
    def dockerfile(self) -> Path:
        return DOCKER_DIR / f"{self.service}.Dockerfile"


# Ports and variables from docs/contract.md ("Ports and paths").
IMAGES = [
    Image("api", "api_service", "requirements/api.lock", 8080, "API_HOST", "API_PORT"),
    Image("consumer", "consumer_service", "requirements/consumer.lock", 8081, "CONSUMER_HOST", "CONSUMER_PORT"),
]
SHARED_PACKAGE = "ingest_common"
OCI_LABELS = {
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
    "org.opencontainers.image.source",
    "org.opencontainers.image.licenses",
}
PINNED_BASE = re.compile(r"^python:3\.11\.\d+-slim-[a-z]+@sha256:[0-9a-f]{64}$")


# --- a small Dockerfile reader --------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Joins continuation lines, drops comments, splits into stages."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = " ".join(args.split())
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(base=parts[0], name=name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, args))
        else:
            assert keyword == "ARG", f"{keyword} before the first FROM"
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for name, value in re.findall(r'([A-Z_][A-Z0-9_]*)=("[^"]*"|\S+)', args):
            env[name] = value.strip('"')
    return env


def labels_of(stage: Stage) -> dict[str, str]:
    labels: dict[str, str] = {}
    for args in stage.all("LABEL"):
        labels.update(dict(re.findall(r'([a-z0-9.\-]+)="([^"]*)"', args)))
    return labels


def copy_sources(stage: Stage) -> list[str]:
    """Sources of the COPY instructions that copy from the build context (not --from)."""
    sources: list[str] = []
    for args in stage.all("COPY"):
        parts = args.split()
        if any(p.startswith("--from=") for p in parts):
            continue
        operands = [p for p in parts if not p.startswith("--")]
        sources.extend(operands[:-1])
    return sources


@pytest.fixture(params=IMAGES, ids=[image.service for image in IMAGES])
def image(request: pytest.FixtureRequest) -> Image:
    assert isinstance(request.param, Image)
    return request.param


@pytest.fixture
def stages(image: Image) -> list[Stage]:
    return parse_dockerfile(image.dockerfile.read_text(encoding="utf-8"))


# --- hadolint -------------------------------------------------------------------------------------


@pytest.mark.tools
def test_hadolint_is_clean(image: Image) -> None:
    hadolint = require_tool("hadolint")
    run_tool([hadolint, "--no-color", "--config", str(HADOLINT_CONFIG), str(image.dockerfile)])


@pytest.mark.tools
def test_hadolint_config_rejects_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = require_tool("hadolint")
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text('FROM python:latest\nRUN pip install requests\nLABEL org.opencontainers.image.title="x"\n')
    completed = subprocess.run(
        [hadolint, "--no-color", "--config", str(HADOLINT_CONFIG), str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3042", "DL3049"):  # latest tag, unpinned pip, pip cache, missing label
        assert rule in completed.stdout, completed.stdout


# --- structure ------------------------------------------------------------------------------------


def test_dockerfile_reader_sees_continuations_and_stages() -> None:
    stages = parse_dockerfile(
        "# c\nFROM a@sha256:x AS one\nRUN echo 1 \\\n    && echo 2\n\nFROM b AS two\nUSER 1:1\n# c\nCMD x\n"
    )
    assert [(s.base, s.name) for s in stages] == [("a@sha256:x", "one"), ("b", "two")]
    assert stages[0].all("RUN") == ["echo 1 && echo 2"]
    assert stages[1].all("USER") == ["1:1"]


def test_base_images_are_one_pinned_slim_python() -> None:
    bases = {stage.base for image in IMAGES for stage in parse_dockerfile(image.dockerfile.read_text())}
    assert len(bases) == 1, f"both images and both stages must share one base image, found {bases}"
    (base,) = bases
    assert PINNED_BASE.match(base), f"{base} is not python:3.11.X-slim-DISTRO pinned by tag and digest"


def test_multi_stage_with_a_non_root_final_stage(image: Image, stages: list[Stage]) -> None:
    assert len(stages) >= 2, "build stage + runtime stage"
    final = stages[-1]
    assert final.all("USER") == ["10001:10001"]
    copied_from = [args for args in final.all("COPY") if "--from=" in args]
    assert copied_from, "the runtime stage copies the venv and the code from the build stage"
    assert copy_sources(final) == [], "the runtime stage copies nothing from the build context"
    assert not any("pip install" in run or "apt-get install" in run for run in final.all("RUN")), (
        "nothing is installed in the runtime stage"
    )


def test_entrypoint_is_exec_form_python_module(image: Image, stages: list[Stage]) -> None:
    (entrypoint,) = stages[-1].all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["python", "-m", image.package]
    assert stages[-1].all("CMD") == []


def test_runtime_environment(image: Image, stages: list[Stage]) -> None:
    env = env_of(stages[-1])
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get(image.host_var) == "0.0.0.0"
    assert env.get(image.port_var) == str(image.port)
    assert env.get("PATH", "").startswith("/opt/venv/bin:")
    assert stages[-1].all("EXPOSE") == [str(image.port)]


def test_oci_labels(stages: list[Stage]) -> None:
    labels = labels_of(stages[-1])
    assert labels.keys() >= OCI_LABELS, f"missing {OCI_LABELS - labels.keys()}"
    assert labels["org.opencontainers.image.revision"] == "${REVISION}"


def test_dependencies_come_from_the_lock_only(image: Image, stages: list[Stage]) -> None:
    build = stages[0]
    installs = [run for run in build.all("RUN") if "pip install" in run]
    assert len(installs) == 1
    (install,) = installs
    assert "-r /tmp/requirements.lock" in install
    assert "--no-cache-dir" in install
    lock_text = (REPO_ROOT / image.lock).read_text(encoding="utf-8")
    if "--hash=" in lock_text:
        assert "--require-hashes" in install, "the lock has hashes: install with --require-hashes"
    else:
        # Without hashes, at least nothing outside the lock and nothing built from source.
        assert "--no-deps" in install
        assert "--only-binary=:all:" in install
    assert f"COPY {image.lock} /tmp/requirements.lock" in [f"COPY {a}" for a in build.all("COPY")]


def test_only_the_service_and_the_shared_package_are_copied(image: Image, stages: list[Stage]) -> None:
    sources = {source.rstrip("/") for stage in stages for source in copy_sources(stage)}
    assert sources == {image.lock, image.package, SHARED_PACKAGE}


# --- .dockerignore --------------------------------------------------------------------------------


def dockerignore_allows(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes. Good enough for our allow-list file."""
    allowed = True
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        if body.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, body[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, body) for prefix in prefixes)
        if hit:
            allowed = negate
    return allowed


def dockerignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_dockerignore_is_an_allow_list() -> None:
    patterns = dockerignore_patterns()
    assert patterns[0] == "*", "deny everything first, then re-include"
    for secret_or_junk in (".git/config", ".venv/bin/python", "terraform/envs/prod/terraform.tfvars", ".env"):
        assert not dockerignore_allows(secret_or_junk, patterns), secret_or_junk
    assert not dockerignore_allows("api_service/__pycache__/app.cpython-311.pyc", patterns)
    assert not dockerignore_allows("requirements/dev.lock", patterns)


def test_dockerignore_lets_every_copied_source_in(image: Image, stages: list[Stage]) -> None:
    patterns = dockerignore_patterns()
    for source in {s.rstrip("/") for stage in stages for s in copy_sources(stage)}:
        assert dockerignore_allows(source, patterns), f"{source} is excluded by .dockerignore"
        if (REPO_ROOT / source).is_dir():
            for file in (REPO_ROOT / source).rglob("*.py"):
                relative = file.relative_to(REPO_ROOT).as_posix()
                if "__pycache__" not in relative:
                    assert dockerignore_allows(relative, patterns), relative


# --- what the image's code imports ----------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST) -> set[str]:
    """Top-level names of absolute imports, leaving out `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_distributions(lock: str) -> set[str]:
    text = (REPO_ROOT / lock).read_text(encoding="utf-8")
    return {_normalize(m) for m in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", text, flags=re.M)}


def test_import_scanner_skips_type_checking_blocks() -> None:
    tree = ast.parse(
        "import os, json.decoder\nfrom typing import TYPE_CHECKING\nfrom . import sibling\n"
        "if TYPE_CHECKING:\n    import types_only\nelse:\n    import runtime_else\n"
        "def f():\n    import aiohttp.web\n"
    )
    assert runtime_imports(tree) == {"os", "json", "typing", "runtime_else", "aiohttp"}


def test_image_code_imports_only_what_the_image_has(image: Image) -> None:
    """Every module the copied packages import at run time is stdlib, a copied package or in the image's lock."""
    copied = {image.package, SHARED_PACKAGE}
    locked = lock_distributions(image.lock)
    module_to_dists = metadata.packages_distributions()
    problems = []
    for package in sorted(copied):
        for file in sorted((REPO_ROOT / package).rglob("*.py")):
            for module in sorted(runtime_imports(ast.parse(file.read_text(encoding="utf-8")))):
                if module in sys.stdlib_module_names or module in copied or module == "__future__":
                    continue
                dists = {_normalize(d) for d in module_to_dists.get(module, [])}
                if not dists & locked:
                    where = file.relative_to(REPO_ROOT)
                    problems.append(f"{where}: `{module}` (distributions {sorted(dists) or 'unknown'})")
    assert not problems, f"not in the {image.service} image ({image.lock}):\n" + "\n".join(problems)
