"""The Protobuf view: a message as YAML, worded as mitmproxy 12's (Rust) view words it.

Without a schema the wire format only tells field numbers and four wire types, so values
are shown with what they could be: a varint as unsigned with its zigzag (``sint``)
reading in a comment (or as signed, when the top bit is set), fixed32/fixed64 as the
shortest of their unsigned, float and signed readings with the others in a comment,
length-delimited data as a string (printable ASCII), a nested message (if it parses
as one) or ``!binary`` hex.  With ``protobuf_definitions`` (a .proto file or directory)
fields get their names and declared types; data that does not fit the definitions is
shown as if there were none.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from proxycore.contentviews import proto_schema, yamltree
from proxycore.contentviews.api import Contentview, Metadata
from proxycore.contentviews.yamltree import Verbatim

MAX_DEPTH = 64  # nested messages guessed below this are shown as bytes
CONTENT_TYPES = ("application/x-protobuf", "application/x-protobuffer")
_ASCII_WHITESPACE = frozenset(b" \t\n\x0c\r")


# wire format ------------------------------------------------------------------------------


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    for i in range(position, min(position + 10, len(data))):
        byte = data[i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if result >= 1 << 64:
                raise ValueError("varint too large")
            return result, i + 1
        shift += 7
    raise ValueError("invalid varint")


def wire_fields(data: bytes) -> list[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` in order: an int for wire types 0, 1 and 5,
    bytes for 2.  Groups (wire types 3 and 4, long deprecated) are skipped with what
    they hold, as mitmproxy does; ValueError for anything malformed."""
    fields = []
    open_groups: list[int] = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0 or number >= 1 << 29:
            raise ValueError(f"invalid field number {number}")
        value: int | bytes
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            if position + size > len(data):
                raise ValueError("data ends inside a fixed-size field")
            value = int.from_bytes(data[position : position + size], "little")
            position += size
        elif wire_type == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ValueError("data ends inside a length-delimited field")
            value = data[position : position + length]
            position += length
        elif wire_type == 3:
            open_groups.append(number)
            continue
        elif wire_type == 4:
            if not open_groups or open_groups.pop() != number:
                raise ValueError("unexpected end of group")
            continue
        else:
            raise ValueError(f"invalid wire type {wire_type}")
        if not open_groups:
            fields.append((number, wire_type, value))
    if open_groups:
        raise ValueError("data ends inside a group")
    return fields


# numbers as mitmproxy shows them ------------------------------------------------------------


def _positional(shortest: str) -> str:
    """A float's shortest digits without exponent, as Rust prints floats (``1e-07`` ->
    ``0.0000001``), with ``.0`` added to whole numbers."""
    if shortest in ("inf", "-inf"):
        text = shortest
    else:
        text = format(Decimal(shortest), "f")
    return text if "." in text else text + ".0"


# mitmproxy offers the float reading of a fixed32/fixed64 only above this magnitude
# (zero, denormals and other tiny values are rarely floats); compared in the float's width.
_FLOAT_FLOOR = 1e-7
_FLOAT32_FLOOR = struct.unpack("<f", struct.pack("<f", _FLOAT_FLOOR))[0]


def _f32_text(bits: int) -> str | None:
    value = struct.unpack("<f", bits.to_bytes(4, "little"))[0]
    if math.isnan(value) or not abs(value) > _FLOAT32_FLOOR:
        return None
    if math.isinf(value):
        return _positional("inf" if value > 0 else "-inf")
    exact = Decimal(value)
    for digits in range(1, 10):  # the fewest digits that read back as the same float32
        candidate = exact.normalize(Context(prec=digits, rounding=ROUND_HALF_UP))
        if struct.unpack("<f", struct.pack("<f", float(candidate)))[0] == value:
            return _positional(str(candidate))
    return _positional(repr(value))


def _f64_text(bits: int) -> str | None:
    value = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
    if math.isnan(value) or not abs(value) > _FLOAT_FLOOR:
        return None
    if math.isinf(value):
        return _positional("inf" if value > 0 else "-inf")
    return _positional(repr(value))


def _readings(readings: list[tuple[str, str]]) -> str:
    """The shortest reading as the value (never ``!sint``), the others as a comment."""
    main = min(readings, key=lambda r: (len(r[0]), len(r[1])))
    rest = [f"{kind}: {value}" for kind, value in readings if kind != main[0]]
    return main[1] + (f"  # {', '.join(rest)}" if rest else "")


def varint_text(value: int) -> Verbatim:
    readings = [("u64", str(value))]
    if value >> 63:
        readings.append(("i64", str(value - (1 << 64))))
    else:
        readings.append(("!sint", str((value >> 1) ^ -(value & 1))))
    return Verbatim(_readings(readings))


def fixed_text(value: int, bits: int) -> Verbatim:
    readings = [(f"u{bits}", str(value))]
    as_float = _f32_text(value) if bits == 32 else _f64_text(value)
    if as_float is not None:
        readings.append((f"f{bits}", as_float))
    if value >> (bits - 1):
        readings.append((f"i{bits}", str(value - (1 << bits))))
    return Verbatim(f"!fixed{bits} {_readings(readings)}")


def binary_text(data: bytes) -> Verbatim:
    return Verbatim("!binary " + yamltree.scalar(data.hex()))


# decoding ------------------------------------------------------------------------------------
# Data is decoded with a message "shape" (proto_schema.Message): the declared one, plus
# for fields it lacks, types guessed from the data, as mitmproxy does (a length-delimited
# field is a string if all its values are printable ASCII, else a message if the first
# value parses as one and the others parse with the shape found for it, else bytes).
# Decoding with a shape is strict: a wire type that does not fit the field is an error.

_GUESSED_VARINT, _GUESSED_FIXED32, _GUESSED_FIXED64 = "?varint", "?fixed32", "?fixed64"


def _looks_like_text(data: bytes) -> bool:
    return all(0x21 <= b <= 0x7E or b in _ASCII_WHITESPACE for b in data)


def _grouped(fields: list[tuple[int, int, Any]]) -> dict[int, list[tuple[int, Any]]]:
    groups: dict[int, list[tuple[int, Any]]] = {}
    for number, wire_type, value in fields:
        groups.setdefault(number, []).append((wire_type, value))
    return {number: groups[number] for number in sorted(groups)}


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


# type -> (wire type, how the value is shown)
_NUMERIC: dict[str, tuple[int, Callable[[int], Any]]] = {
    "int32": (0, lambda v: _signed(v, 32)),
    "int64": (0, lambda v: _signed(v, 64)),
    "uint32": (0, lambda v: v & 0xFFFFFFFF),
    "uint64": (0, lambda v: v),
    "sint32": (0, lambda v: _zigzag(v & 0xFFFFFFFF)),
    "sint64": (0, _zigzag),
    "bool": (0, lambda v: v != 0),
    "fixed32": (5, lambda v: v),
    "sfixed32": (5, lambda v: _signed(v, 32)),
    "float": (5, lambda v: struct.unpack("<f", v.to_bytes(4, "little"))[0]),
    "fixed64": (1, lambda v: v),
    "sfixed64": (1, lambda v: _signed(v, 64)),
    "double": (1, lambda v: struct.unpack("<d", v.to_bytes(8, "little"))[0]),
    _GUESSED_VARINT: (0, varint_text),
    _GUESSED_FIXED32: (5, lambda v: fixed_text(v, 32)),
    _GUESSED_FIXED64: (1, lambda v: fixed_text(v, 64)),
}


class _Decoder:
    def __init__(self, schema: proto_schema.Schema) -> None:
        self.schema = schema
        self.guessed: dict[str, proto_schema.Message] = {}  # shapes found in the data

    def shape(self, name: str) -> proto_schema.Message | None:
        return self.guessed.get(name) or self.schema.messages.get(name)

    # guessing ------------------------------------------------------------------------

    def guess_fields(self, groups: dict[int, list[tuple[int, Any]]], scope: str, depth: int) -> list[proto_schema.Field]:
        fields = []
        for number, values in groups.items():
            # The type comes from the values of one wire type, looked at in mitmproxy's
            # order: fixed32, fixed64, varint, length-delimited (values of another wire
            # type must then fit it, e.g. as packed varints).
            wire_types = {w for w, _ in values}
            if 5 in wire_types:
                type_name = _GUESSED_FIXED32
            elif 1 in wire_types:
                type_name = _GUESSED_FIXED64
            elif 0 in wire_types:
                type_name = _GUESSED_VARINT
            else:
                type_name = self.guess_length_delimited([v for _, v in values], f"{scope}.{number}", depth)
            fields.append(proto_schema.Field(str(number), number, type_name, repeated=len(values) > 1))
        return fields

    def guess_length_delimited(self, values: list[bytes], name: str, depth: int) -> str:
        if all(_looks_like_text(v) for v in values):
            return "string"
        if depth < MAX_DEPTH:
            try:
                shape = self.guess_message(values[0], name, depth + 1)
                self.guessed[name] = shape
                for other in values[1:]:
                    self.message(shape, other, depth + 1)
                return name
            except ValueError:
                self.guessed.pop(name, None)
        return "bytes"

    def guess_message(self, data: bytes, name: str, depth: int) -> proto_schema.Message:
        return proto_schema.Message(name, self.guess_fields(_grouped(wire_fields(data)), name, depth))

    def merged(self, declared: proto_schema.Message, data: bytes) -> proto_schema.Message:
        """``declared`` and, for the fields of ``data`` it does not declare, guessed ones."""
        self.message(declared, data)  # the data must fit the declared fields first
        known = {f.number for f in declared.fields}
        unknown = {n: v for n, v in _grouped(wire_fields(data)).items() if n not in known}
        extra = self.guess_fields(unknown, declared.full_name, 0)
        return proto_schema.Message(declared.full_name, declared.fields + extra)

    # decoding -------------------------------------------------------------------------

    def values(self, f: proto_schema.Field, wire_type: int, value: Any, depth: int) -> list[tuple[Any, bool]]:
        """The value(s) one wire field holds, each with whether it is the type's default."""
        type_name = f.type
        shape = self.shape(type_name)
        if shape is not None:
            if wire_type != 2 or depth >= MAX_DEPTH:
                raise ValueError(f"field {f.name} does not hold a message")
            return [(self.message(shape, value, depth + 1), False)]
        if type_name in ("string", "bytes"):
            if wire_type != 2:
                raise ValueError(f"field {f.name} is not length-delimited")
            shown = value.decode("utf-8") if type_name == "string" else binary_text(value)
            return [(shown, not value)]
        enum = self.schema.enums.get(type_name)
        wire, show = _NUMERIC["int32"] if enum is not None else _NUMERIC[type_name]
        if wire_type == wire:
            raw = [value]
        elif wire_type == 2 and f.repeated:
            raw = self.packed(wire, value)
        else:
            raise ValueError(f"field {f.name}: unexpected wire type {wire_type}")
        if enum is not None:
            return [(enum.get(show(v), show(v)), v == 0) for v in raw]
        return [(show(v), v == 0) for v in raw]

    @staticmethod
    def packed(wire: int, data: bytes) -> list[int]:
        out = []
        position = 0
        while position < len(data):
            if wire == 0:
                value, position = _varint(data, position)
            else:
                size = 4 if wire == 5 else 8
                if position + size > len(data):
                    raise ValueError("packed field ends early")
                value = int.from_bytes(data[position : position + size], "little")
                position += size
            out.append(value)
        return out

    def map_entry(self, f: proto_schema.Field, wire_type: int, value: Any, depth: int) -> tuple[Any, Any]:
        assert f.map_types is not None
        if wire_type != 2:
            raise ValueError(f"map field {f.name} is not length-delimited")
        key_type, value_type = f.map_types
        defaults = {"string": "", "bytes": binary_text(b""), "bool": False}
        key: Any = defaults.get(key_type, 0)
        item: Any = defaults.get(value_type, 0)
        for number, w, v in wire_fields(value):
            if number in (1, 2):
                entry_field = proto_schema.Field("key" if number == 1 else "value", number,
                                                 key_type if number == 1 else value_type)
                shown = self.values(entry_field, w, v, depth)[-1][0]
                if number == 1:
                    key = shown
                else:
                    item = shown
        return key, item

    def message(self, shape: proto_schema.Message, data: bytes, depth: int = 0) -> dict[Any, Any]:
        by_number = {f.number: f for f in shape.fields}
        found: dict[int, list[tuple[Any, bool]]] = {}
        entries: dict[int, dict[Any, Any]] = {}
        for number, wire_type, value in wire_fields(data):
            f = by_number.get(number)
            if f is None:
                continue  # a field the shape does not know is not shown (as in mitmproxy)
            if f.map_types is not None:
                key, item = self.map_entry(f, wire_type, value, depth)
                entries.setdefault(number, {})[key] = item
            else:
                found.setdefault(number, []).extend(self.values(f, wire_type, value, depth))
        result: dict[Any, Any] = {}
        for f in shape.fields:
            key = int(f.name) if f.name.isdigit() else f.name
            if f.number in entries:
                result[key] = entries[f.number]
            elif f.number in found:
                values = found[f.number]
                if f.repeated:
                    result[key] = [v for v, _ in values]
                elif not (f.implicit and values[-1][1] and not isinstance(values[-1][0], dict)):
                    result[key] = values[-1][0]  # a singular field seen twice: the last one counts
        return result


def decode_unknown(data: bytes) -> dict[Any, Any]:
    """A message with no definitions: field number -> value (a list if repeated)."""
    decoder = _Decoder(proto_schema.Schema())
    return decoder.message(decoder.guess_message(data, "Unknown", 0), data)


def decode_known(schema: proto_schema.Schema, declared: proto_schema.Message, data: bytes) -> dict[Any, Any]:
    decoder = _Decoder(schema)
    return decoder.message(decoder.merged(declared, data), data)


# the view -------------------------------------------------------------------------------------------


def schema_message(metadata: Metadata) -> tuple[proto_schema.Schema, proto_schema.Message] | None:
    """The definitions and the message type they give for this body, if any."""
    if metadata.protobuf_definitions is None:
        return None
    schema = proto_schema.load_cached(metadata.protobuf_definitions)
    # As mitmproxy: the path is the flow's request's (for a response too), and a body is
    # a request's if its message is the flow's request.
    request = getattr(metadata.flow, "request", None)
    path = getattr(request, "path", None)
    is_request = request is not None and metadata.http_message is request
    message = proto_schema.find_message(schema, path if isinstance(path, str) else None, is_request)
    return (schema, message) if message is not None else None


def prettify_message(data: bytes, known: tuple[proto_schema.Schema, proto_schema.Message] | None) -> str:
    """One message as YAML; with definitions if the data fits them, else without."""
    if not data:
        return "{}  # empty protobuf message"
    if known is not None:
        try:
            return yamltree.dumps(decode_known(known[0], known[1], data))
        except ValueError:
            pass  # the definitions do not match: as mitmproxy, show it as unknown data
    return yamltree.dumps(decode_unknown(data))


class ProtobufContentview(Contentview):
    name = "Protobuf"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        return prettify_message(data, schema_message(metadata))

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return float(metadata.content_type in CONTENT_TYPES)


protobuf = ProtobufContentview()
