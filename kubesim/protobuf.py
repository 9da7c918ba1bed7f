"""Kubernetes protobuf request bodies, as kubectl's typed generators and client-go send them.

``kubectl create job|deployment|service|role|configmap|...`` encode the new object as
``application/vnd.kubernetes.protobuf`` (the ``k8s\\x00`` magic, then a ``runtime.Unknown``
wrapping the typed message). kubesim decodes any built-in kind of the API groups it serves
(core, apps, batch, rbac, policy, networking, coordination v1) with upstream's own message
definitions (``k8s-api.binpb``) to the JSON form and answers JSON, which kubectl accepts.
``DeleteOptions`` bodies (client-go's typed delete, as Helm sends them) are decoded too. Any
other protobuf body is refused with 415 naming the JSON alternative.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from kubesim.errors import ApiError

MAGIC = b"k8s\x00"
_WIRE_VARINT, _WIRE_I64, _WIRE_LEN, _WIRE_I32 = 0, 1, 2, 5


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field of a message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == _WIRE_VARINT:
            val, pos = _varint(buf, pos)
            yield num, wire, val
        elif wire == _WIRE_LEN:
            n, pos = _varint(buf, pos)
            yield num, wire, buf[pos : pos + n]
            pos += n
        elif wire == _WIRE_I64:
            yield num, wire, buf[pos : pos + 8]
            pos += 8
        elif wire == _WIRE_I32:
            yield num, wire, buf[pos : pos + 4]
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _s(v: int | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


# -- typed objects, from upstream's own message definitions ------------------------------------
#
# ``k8s-api.binpb`` is a FileDescriptorSet compiled from upstream's generated.proto files
# (k8s.io/api core, apps, batch, rbac, policy, networking, coordination v1 and their
# apimachinery imports); their field names are the JSON names. To refresh it:
#   protoc -I<dir with k8s.io/api/... and k8s.io/apimachinery/...> --include_imports \
#       --descriptor_set_out=kubesim/k8s-api.binpb $(find k8s.io -name generated.proto)
# (protoc from grpcio-tools). The ``protobuf`` library parses the wire format; the walk below
# turns a message into the JSON upstream's Go types would serialize.

DESCRIPTORS = Path(__file__).with_name("k8s-api.binpb")
_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
# pointer fields whose explicit zero or false means something (Go emits every non-pointer
# scalar, zeros included, so other zero scalars are dropped as JSON omitempty drops them)
_MEANINGFUL_ZERO = frozenset(
    {
        "replicas",
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
        "suspend",
        "terminationGracePeriodSeconds",
        "automountServiceAccountToken",
        "immutable",
        "revisionHistoryLimit",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
        "runAsUser",
        "runAsGroup",
        "runAsNonRoot",
        "privileged",
        "allowPrivilegeEscalation",
        "readOnlyRootFilesystem",
        "optional",
        "defaultMode",
        "mode",
        "enableServiceLinks",
        "shareProcessNamespace",
        "allocateLoadBalancerNodePorts",
        "manualSelector",
    }
)


@functools.cache
def _pool() -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool

    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTORS.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return pool


def _message_type(api_version: str, kind: str) -> Any | None:
    """The message class of ``kind`` in ``api_version`` (None when kubesim has no schema)."""
    from google.protobuf import message_factory

    group, _, version = api_version.rpartition("/")
    package = f"k8s.io.api.{group.split('.')[0] if group else 'core'}.{version}"
    try:
        desc = _pool().FindMessageTypeByName(f"{package}.{kind}")
    except KeyError:
        return None
    return message_factory.GetMessageClass(desc)


def _rfc3339(msg: Any) -> str | None:
    if not msg.seconds and not msg.nanos:
        return None  # the zero Time: JSON null
    stamp = dt.datetime.fromtimestamp(msg.seconds, dt.UTC)
    if msg.DESCRIPTOR.name == "MicroTime":
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{msg.nanos // 1000:06d}Z"
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _special(msg: Any) -> tuple[bool, Any]:
    """The JSON of apimachinery's types that do not serialize as objects."""
    name = msg.DESCRIPTOR.full_name
    if name in (_META + "Time", _META + "MicroTime"):
        return True, _rfc3339(msg)
    if name == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        return True, msg.string
    if name == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        return True, msg.strVal if msg.type == 1 else msg.intVal
    if name in ("k8s.io.apimachinery.pkg.runtime.RawExtension", _META + "FieldsV1"):
        return True, json.loads(msg.raw) if msg.raw else None
    if name == _META + "Duration":
        return True, f"{msg.duration / 1e9:g}s"
    return False, None


def _value(field: Any, value: Any) -> Any:
    if field.type == field.TYPE_MESSAGE:
        return to_json(value)
    if field.type == field.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def to_json(msg: Any) -> Any:
    """A decoded upstream message as the JSON upstream serializes it."""
    special, out = _special(msg)
    if special:
        return out
    obj: dict[str, Any] = {}
    for field, value in msg.ListFields():
        name = field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            vf = field.message_type.fields_by_name["value"]
            obj[name] = {k: _value(vf, v) for k, v in value.items()}
        elif field.is_repeated:
            obj[name] = [_value(field, v) for v in value]
        elif field.type == field.TYPE_MESSAGE:
            converted = to_json(value)
            if converted is not None:
                obj[name] = converted
        elif value or name in _MEANINGFUL_ZERO:
            obj[name] = _value(field, value)
    return obj


def _unwrap(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw message) of a ``runtime.Unknown`` after the magic prefix."""
    if not body.startswith(MAGIC):
        raise _unsupported("a protobuf body without the k8s magic prefix")
    api_version = kind = ""
    raw = b""
    for num, _w, v in fields(body[len(MAGIC) :]):
        if num == 1 and isinstance(v, bytes):
            for n, _ww, x in fields(v):
                if n == 1:
                    api_version = _s(x)
                elif n == 2:
                    kind = _s(x)
        elif num == 2 and isinstance(v, bytes):
            raw = v
    return api_version, kind, raw


def _bad_body(exc: Exception) -> ApiError:
    return ApiError(400, "BadRequest", f"the protobuf body could not be decoded: {exc}", details={})


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object; 415 for kinds kubesim cannot decode."""
    try:
        api_version, kind, raw = _unwrap(body)
        message_type = _message_type(api_version, kind)
        if message_type is None:
            raise _unsupported(f"protobuf for {api_version}, Kind={kind}")
        obj = to_json(message_type.FromString(raw))
    except (ValueError, UnicodeDecodeError, DecodeError) as exc:
        raise _bad_body(exc) from exc
    return {"apiVersion": api_version, "kind": kind, **obj}


def _int64(v: int | bytes) -> int:
    """A varint read as protobuf int64 (negative numbers are sent as 10-byte two's complement)."""
    n = v if isinstance(v, int) else int.from_bytes(v, "little")
    return n - (1 << 64) if n >= 1 << 63 else n


def _preconditions(buf: bytes) -> dict[str, Any]:
    names = {1: "uid", 2: "resourceVersion"}
    return {names[num]: _s(v) for num, _w, v in fields(buf) if num in names}


def delete_options(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf ``DeleteOptions`` body (what Helm's client sends on delete).

    client-go encodes it in the group version of the resource's client, so any apiVersion is
    accepted (``v1``, ``apps/v1``, ``meta.k8s.io/v1``); the kind must be DeleteOptions.
    """
    try:
        api_version, kind, raw = _unwrap(body)
        if kind != "DeleteOptions":
            raise _unsupported(f"protobuf for {api_version}, Kind={kind} as delete options")
        opts: dict[str, Any] = {}
        for num, _w, v in fields(raw):
            if num == 1:
                opts["gracePeriodSeconds"] = _int64(v)
            elif num == 2 and isinstance(v, bytes):
                opts["preconditions"] = _preconditions(v)
            elif num == 3:
                opts["orphanDependents"] = bool(v)
            elif num == 4:
                opts["propagationPolicy"] = _s(v)
            elif num == 5:
                opts.setdefault("dryRun", []).append(_s(v))
        return opts
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad_body(exc) from exc


def _unsupported(what: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"kubesim does not decode {what}; send JSON instead (for example `kubectl create -f FILE` or "
        "`kubectl apply -f FILE`) - accepted media types include: application/json, application/yaml",
        details={},
    )
