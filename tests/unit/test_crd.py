"""jobflow.crd: the generated CRD is structural (every node typed, no refs or unions), carries
every phase in its enums, the quoted condition statuses, printer columns, short names, category,
status subresource, preserve-unknown-fields on templates, and the schema defaults of jobflow.defaults
(the stored ones only: none inside steps[]).
(That crds/jobflows.yaml equals the generator is checked in tests/e2e/test_cli_offline.py.)"""

from __future__ import annotations

from typing import Any

import yaml

from jobflow import crd, model


def schema() -> dict[str, Any]:
    version = crd.crd()["spec"]["versions"][0]  # type: ignore[index]
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for key, child in node.get("properties", {}).items():
        found += walk(child, f"{path}.{key}")
    if "items" in node:
        found += walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_structural() -> None:
    # Kubernetes' structural-schema rule: every node has a type, except one that keeps any
    # value (x-kubernetes-preserve-unknown-fields: a fan-out's withItems entries).
    for path, node in walk(schema()):
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") is True, path
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title"} & node.keys(), path


def test_enums_and_phases() -> None:
    nodes = dict(walk(schema()))
    assert nodes[".status.phase"]["enum"] == [p.value for p in model.FlowPhase]
    assert set(nodes[".status.steps[].phase"]["enum"]) == {p.value for p in model.StepPhase}
    assert nodes[".status.conditions[].status"]["enum"] == ["True", "False", "Unknown"]
    assert nodes[".spec.steps[].type"]["enum"] == ["Job", "Manual"]
    assert "'True'" in crd.crd_yaml()  # quoted, never a YAML boolean


def test_preserve_unknown_and_defaults() -> None:
    nodes = dict(walk(schema()))
    assert nodes[".spec.steps[].template"]["x-kubernetes-preserve-unknown-fields"] is True
    assert (
        nodes[".spec.resourceTemplates.volumeClaimTemplates[]"][
            "x-kubernetes-preserve-unknown-fields"
        ]
        is True
    )
    assert nodes[".status"]["x-kubernetes-preserve-unknown-fields"] is True
    assert nodes[".spec.executionPolicy"]["default"] == {}
    assert nodes[".spec.executionPolicy.concurrencyPolicy"]["default"] == "Forbid"
    assert nodes[".spec.executionPolicy.ttlSecondsAfterFinished"]["default"] == 86400
    assert nodes[".spec.executionPolicy.backoffLimit"]["default"] == 6
    # Nothing inside a list (steps[] above all) is defaulted in storage: a stored default in a
    # list item makes every `kubectl apply` of an unchanged manifest "configured"
    # (jobflow.defaults); those defaults apply in memory.
    for path, node in walk(schema()):
        if "[]" in path:
            assert "default" not in node, path
    assert nodes[".spec.steps[]"]["required"] == ["name"]
    assert "inputs" in nodes[".spec.steps[]"]["properties"]
    assert nodes[".spec.steps[].inputs.artifacts[]"]["properties"]["from"]["type"] == "string"


def test_identity_and_columns() -> None:
    doc = yaml.safe_load(crd.crd_yaml())
    spec = doc["spec"]
    assert doc["metadata"]["name"] == "jobflows.workflow.kube-zen.io"
    assert spec["names"]["shortNames"] == ["jf", "flow"]
    assert spec["names"]["categories"] == ["all"]
    assert spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Phase", "Progress", "Age"]
    assert columns["Progress"]["jsonPath"] == ".status.progress.display"
    assert columns["Age"]["type"] == "date"
