"""kubesim's protobuf decoding of DeleteOptions bodies (kubesim/protobuf.py ``delete_options``).

Covers: the exact body Helm's client sends when it deletes a release Secret (empty options,
captured from `helm uninstall`); every field (gracePeriodSeconds also negative, preconditions,
orphanDependents, propagationPolicy, repeated dryRun) in the group version of any client;
another kind is 415 UnsupportedMediaType; a truncated body or one without the magic is refused.
"""

from __future__ import annotations

import pytest

from kubesim import protobuf
from kubesim.errors import ApiError
from tests.fixtures.kubesim import protobuf_delete_options

# `helm uninstall` (Helm v4 via helm-python-sdk) deleting sh.helm.release.v1.<release>.v1
HELM_UNINSTALL_BODY = bytes.fromhex(
    "6b3873000a130a027631120d44656c6574654f7074696f6e7312001a002200"
)


def test_the_body_helm_sends_decodes_to_empty_options() -> None:
    assert protobuf.delete_options(HELM_UNINSTALL_BODY) == {}


@pytest.mark.parametrize("api_version", ["v1", "apps/v1", "meta.k8s.io/v1"])
def test_every_field_decodes_to_its_json_name(api_version: str) -> None:
    body = protobuf_delete_options(
        api_version=api_version,
        grace_period_seconds=30,
        preconditions={"uid": "1234-abcd", "resourceVersion": "42"},
        orphan_dependents=False,
        propagation_policy="Foreground",
        dry_run=["All"],
    )
    assert protobuf.delete_options(body) == {
        "gracePeriodSeconds": 30,
        "preconditions": {"uid": "1234-abcd", "resourceVersion": "42"},
        "orphanDependents": False,
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    }


def test_negative_grace_period_and_partial_preconditions() -> None:
    body = protobuf_delete_options(grace_period_seconds=-1, preconditions={"uid": "u-1"})
    assert protobuf.delete_options(body) == {
        "gracePeriodSeconds": -1,
        "preconditions": {"uid": "u-1"},
    }


def test_another_kind_is_unsupported_media_type() -> None:
    with pytest.raises(ApiError) as exc:
        protobuf.delete_options(protobuf_delete_options(kind="ConfigMap"))
    assert (exc.value.code, exc.value.reason) == (415, "UnsupportedMediaType")
    assert "Kind=ConfigMap" in exc.value.message


@pytest.mark.parametrize(
    ("body", "code"),
    [(HELM_UNINSTALL_BODY[:-3], 400), (b'{"propagationPolicy":"Orphan"}', 415)],
    ids=["truncated", "no-magic"],
)
def test_undecodable_bodies_are_refused(body: bytes, code: int) -> None:
    with pytest.raises(ApiError) as exc:
        protobuf.delete_options(body)
    assert exc.value.code == code
