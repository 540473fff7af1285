"""Unit tests of tests/helm/k8s_schemas.py, which makes kubeconform's offline schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helm.k8s_schemas import build, standalone

DEFINITIONS = {
    "Spec": {"type": "object", "properties": {"meta": {"$ref": "#/$defs/Meta"}}, "additionalProperties": False},
    "Meta": {"type": "object", "properties": {"name": {"type": "string"}}},
    "Unused": {"type": "string"},
}
KIND = {
    "$id": "https://kubernetes.io/api/thing-v1.json",
    "type": "object",
    "properties": {
        "kind": {"type": "string", "enum": ["Thing"]},
        "spec": {"$ref": "/api/_definitions.json#/$defs/Spec"},
    },
}


def test_standalone_inlines_what_the_schema_reaches_and_nothing_else() -> None:
    schema = standalone(KIND, DEFINITIONS)
    assert "$id" not in schema
    assert schema["properties"]["spec"] == {"$ref": "#/$defs/Spec"}
    assert set(schema["$defs"]) == {"Spec", "Meta"}
    assert schema["$defs"]["Spec"]["properties"]["meta"] == {"$ref": "#/$defs/Meta"}


def test_standalone_refuses_a_foreign_ref() -> None:
    with pytest.raises(ValueError, match="unexpected"):
        standalone({"properties": {"x": {"$ref": "https://example.com/x.json"}}}, {})


def test_build_writes_only_kinds(tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    (source / "_definitions.json").write_text(json.dumps({"$defs": DEFINITIONS}))
    (source / "thing-v1.json").write_text(json.dumps(KIND))
    (source / "thingspec-v1.json").write_text(json.dumps({"$ref": "/api/_definitions.json#/$defs/Spec"}))
    (source / "all.json").write_text("{}")
    assert build(source, dest) == 1
    assert [p.name for p in dest.iterdir()] == ["thing-v1.json"]
