"""External-data references of an ONNX model, read from the protobuf wire format without ``onnx``.

The device has no ``onnx`` package, and ONNX Runtime opens whatever ``location`` a tensor's
``external_data`` names (relative to the model's folder) when it loads the model: a hostile
bundle could point it at ``../../../etc/shadow`` or at a file outside the slot. So before a
model is loaded, :func:`external_data_locations` walks the serialized ``ModelProto`` (graph
initializers and sparse initializers, node attribute tensors and subgraphs, functions) and
returns every ``location``; :func:`external_data_problem` checks each one is a plain relative
path to a file the bundle's manifest lists.

Field numbers are those of onnx/onnx.proto (IR version 10): ModelProto.graph = 7,
ModelProto.functions = 25; GraphProto.node = 1, .initializer = 5, .sparse_initializer = 15;
NodeProto.attribute = 5; AttributeProto.t = 5, .g = 6, .tensors = 10, .graphs = 11,
.sparse_tensor = 22, .sparse_tensors = 23; FunctionProto.node = 7; SparseTensorProto.values = 1,
.indices = 2; TensorProto.name = 8, .external_data = 13 (StringStringEntryProto key = 1,
value = 2), .data_location = 14 (EXTERNAL = 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

__all__ = ["OnnxParseError", "external_data_locations", "external_data_problem"]

MAX_DEPTH = 64  # nested subgraphs deeper than this are refused, not recursed into


class OnnxParseError(ValueError):
    """Bytes that are not a well-formed protobuf message where a ModelProto part should be."""


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise OnnxParseError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise OnnxParseError("varint longer than 10 bytes")


def _fields(data: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each field of one message; value is an int for
    varint/fixed fields and the bytes for length-delimited ones."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise OnnxParseError("field number 0")
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            if pos + 8 > len(data):
                raise OnnxParseError("truncated 64-bit field")
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == 5:
            if pos + 4 > len(data):
                raise OnnxParseError("truncated 32-bit field")
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise OnnxParseError(f"field {number}: {length} bytes announced, {len(data) - pos} left")
            value, pos = data[pos : pos + length], pos + length
        else:
            raise OnnxParseError(f"field {number}: wire type {wire} (groups) is not used by ONNX")
        yield number, wire, value


def _sub(fields: list, number: int) -> Iterator[memoryview]:
    for n, wire, value in fields:
        if n == number and wire == 2:
            yield value


def _tensor(data: memoryview) -> Iterator[tuple[str, str | None]]:
    """Every ``location`` a tensor names (each one: a hostile model may name several)."""
    name, locations, external = "", [], False
    for n, wire, value in _fields(data):
        if n == 8 and wire == 2:
            name = bytes(value).decode("utf-8", "replace")
        elif n == 14 and wire == 0 and value == 1:
            external = True
        elif n == 13 and wire == 2:
            external = True
            entry = {k: bytes(v).decode("utf-8", "replace") for k, w, v in _fields(value) if w == 2}
            if entry.get(1) == "location":
                locations.append(entry.get(2, ""))
    if external:
        for location in locations or [None]:
            yield name, location


def _sparse(data: memoryview) -> Iterator[tuple[str, str | None]]:
    fields = list(_fields(data))
    for number in (1, 2):
        for tensor in _sub(fields, number):
            yield from _tensor(tensor)


def _graph(data: memoryview, depth: int) -> Iterator[tuple[str, str | None]]:
    if depth > MAX_DEPTH:
        raise OnnxParseError(f"subgraphs nested deeper than {MAX_DEPTH}")
    fields = list(_fields(data))
    for tensor in _sub(fields, 5):
        yield from _tensor(tensor)
    for sparse in _sub(fields, 15):
        yield from _sparse(sparse)
    for node in _sub(fields, 1):
        yield from _node(node, depth)


def _node(data: memoryview, depth: int) -> Iterator[tuple[str, str | None]]:
    for attribute in _sub(list(_fields(data)), 5):
        fields = list(_fields(attribute))
        for number in (5, 10):
            for tensor in _sub(fields, number):
                yield from _tensor(tensor)
        for number in (22, 23):
            for sparse in _sub(fields, number):
                yield from _sparse(sparse)
        for number in (6, 11):
            for graph in _sub(fields, number):
                yield from _graph(graph, depth + 1)


def external_data_locations(model: bytes | memoryview) -> list[tuple[str, str | None]]:
    """(tensor name, ``location``) of every tensor stored as external data in a serialized
    ModelProto; ``location`` is None when a tensor is marked external but names none.
    Raises :class:`OnnxParseError` on malformed protobuf."""
    data = memoryview(model)
    fields = list(_fields(data))
    out: list[tuple[str, str | None]] = []
    for graph in _sub(fields, 7):
        out.extend(_graph(graph, 0))
    for function in _sub(fields, 25):
        for node in _sub(list(_fields(function)), 7):
            out.extend(_node(node, 0))
    return out


def external_data_problem(model_path: Path, folder: Path, listed: set[str]) -> str | None:
    """Why the ONNX model at ``model_path`` (inside the unpacked bundle ``folder``) may not be
    loaded, or None: every external-data ``location`` must be a relative path without ``..``,
    resolving inside ``folder`` to a regular file that the manifest lists (``listed``: member
    paths)."""
    from xenoedge.export.bundle.manifest import member_path_problem

    try:
        locations = external_data_locations(model_path.read_bytes())
    except OnnxParseError as exc:
        return f"{model_path.name}: not a readable ONNX model ({exc})"
    model_dir = model_path.parent
    for tensor, location in locations:
        if not location:
            return f"{model_path.name}: tensor {tensor!r} is marked external but names no location"
        if "\\" in location or location.startswith("/") or ".." in location.replace("\\", "/").split("/"):
            return f"{model_path.name}: tensor {tensor!r} reads external data from {location!r}, outside the slot"
        target = model_dir / location
        try:
            member = target.relative_to(folder).as_posix()
        except ValueError:
            return f"{model_path.name}: tensor {tensor!r} reads external data from {location!r}, outside the slot"
        if member_path_problem(member) or member not in listed:
            return (
                f"{model_path.name}: tensor {tensor!r} reads external data from {location!r}, "
                "which is not a file the signed manifest lists"
            )
        if target.is_symlink() or not target.is_file():
            return f"{model_path.name}: external data file {location!r} of tensor {tensor!r} is missing"
    return None
