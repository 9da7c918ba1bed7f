"""Just enough Kubernetes protobuf to decode what kubectl's typed generators send.

``kubectl create namespace|configmap|secret|serviceaccount`` encode the new object as
``application/vnd.kubernetes.protobuf`` (the ``k8s\\x00`` magic, then a ``runtime.Unknown``
wrapping the typed message). kubesim decodes those four kinds to the JSON form and answers JSON,
which kubectl accepts. ``DeleteOptions`` bodies (client-go's typed delete, as Helm sends them)
are decoded too. Any other protobuf body is refused with 415 naming the JSON alternative.
Field numbers are those of k8s.io/api/core/v1/generated.proto and apimachinery's meta/v1.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping
from typing import Any

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


def _map(entries: list[bytes], *, as_bytes: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in entries:
        key, value = "", b""
        for num, _w, v in fields(e):
            if num == 1:
                key = _s(v)
            elif num == 2 and isinstance(v, bytes):
                value = v
        out[key] = base64.b64encode(value).decode() if as_bytes else value.decode()
    return out


def _owner_ref(buf: bytes) -> dict[str, Any]:
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    ref: dict[str, Any] = {}
    for num, _w, v in fields(buf):
        if num in names:
            ref[names[num]] = _s(v)
        elif num == 6:
            ref["controller"] = bool(v)
        elif num == 7:
            ref["blockOwnerDeletion"] = bool(v)
    return ref


def object_meta(buf: bytes) -> dict[str, Any]:
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: dict[str, Any] = {}
    labels: list[bytes] = []
    annotations: list[bytes] = []
    for num, _w, v in fields(buf):
        if num in strings and _s(v):
            meta[strings[num]] = _s(v)
        elif num == 11 and isinstance(v, bytes):
            labels.append(v)
        elif num == 12 and isinstance(v, bytes):
            annotations.append(v)
        elif num == 13 and isinstance(v, bytes):
            meta.setdefault("ownerReferences", []).append(_owner_ref(v))
        elif num == 14:
            meta.setdefault("finalizers", []).append(_s(v))
    if labels:
        meta["labels"] = _map(labels)
    if annotations:
        meta["annotations"] = _map(annotations)
    return meta


def _flat(
    kind: str,
    *,
    maps: Mapping[int, tuple[str, bool]],
    strings: Mapping[int, str] | None = None,
    bools: Mapping[int, str],
) -> Callable[[bytes], dict[str, Any]]:
    """A decoder for a v1 kind made of metadata (field 1), string maps and scalars.

    ``maps``: field number -> (JSON name, values are bytes, shown base64 as in JSON).
    """
    strings = strings or {}

    def decode(buf: bytes) -> dict[str, Any]:
        obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind}
        entries: dict[int, list[bytes]] = {}
        for num, _w, v in fields(buf):
            if num == 1 and isinstance(v, bytes):
                obj["metadata"] = object_meta(v)
            elif num in maps and isinstance(v, bytes):
                entries.setdefault(num, []).append(v)
            elif num in strings:
                obj[strings[num]] = _s(v)
            elif num in bools:
                obj[bools[num]] = bool(v)
        for num, (name, as_bytes) in maps.items():
            if num in entries:
                obj[name] = _map(entries[num], as_bytes=as_bytes)
        return obj

    return decode


_configmap = _flat(
    "ConfigMap", maps={2: ("data", False), 3: ("binaryData", True)}, bools={4: "immutable"}
)
_secret = _flat(
    "Secret",
    maps={2: ("data", True), 4: ("stringData", False)},
    strings={3: "type"},
    bools={5: "immutable"},
)


def _namespace(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace"}
    for num, _w, v in fields(buf):
        if num == 1 and isinstance(v, bytes):
            obj["metadata"] = object_meta(v)
        elif num == 2 and isinstance(v, bytes):
            fins = [_s(f) for n, _ww, f in fields(v) if n == 1]
            if fins:
                obj["spec"] = {"finalizers": fins}
    return obj


def _service_account(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ServiceAccount"}
    for num, _w, v in fields(buf):
        if num == 1 and isinstance(v, bytes):
            obj["metadata"] = object_meta(v)
        elif num == 3 and isinstance(v, bytes):
            name = next((_s(x) for n, _ww, x in fields(v) if n == 1), "")
            obj.setdefault("imagePullSecrets", []).append({"name": name})
        elif num == 4:
            obj["automountServiceAccountToken"] = bool(v)
    return obj


DECODERS: dict[tuple[str, str], Callable[[bytes], dict[str, Any]]] = {
    ("v1", "ConfigMap"): _configmap,
    ("v1", "Secret"): _secret,
    ("v1", "Namespace"): _namespace,
    ("v1", "ServiceAccount"): _service_account,
}


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
        decoder = DECODERS.get((api_version, kind))
        if decoder is None:
            raise _unsupported(f"protobuf for {api_version}, Kind={kind}")
        return decoder(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad_body(exc) from exc


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
