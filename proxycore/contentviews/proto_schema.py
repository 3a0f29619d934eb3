"""Just enough of the .proto language for the protobuf and gRPC views to name fields.

``protobuf_definitions`` points at a .proto file (or a directory searched for them, as
in mitmproxy); we read messages (nested ones too), their fields (scalar, message, enum,
``map<K, V>``, inside ``oneof``), enums and services.  Options, reserved ranges,
extensions and imports are skipped: they do not change how a message is decoded.
A file we cannot read is a ValueError, which the view reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILES = 1000
MAX_FILE_SIZE = 4 * 1024 * 1024

_TOKEN = re.compile(
    r"""\s+|//[^\n]*|/\*.*?\*/|(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    r"""|(?P<word>[A-Za-z_.][\w.]*)|(?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?))"""
    r"""|(?P<sym>[{}()\[\]<>;=,:])""",
    re.S,
)


@dataclass
class Field:
    name: str
    number: int
    type: str  # a scalar type name, or the full name of a message or enum
    repeated: bool = False
    map_types: tuple[str, str] | None = None  # map<K, V>: the key and value types
    #: proto3 singular field without ``optional``: a default value (0, "", false) is not shown
    implicit: bool = False


@dataclass
class Message:
    full_name: str
    fields: list[Field] = field(default_factory=list)


@dataclass
class Method:
    name: str
    input_type: str
    output_type: str


@dataclass
class ProtoFile:
    package: str = ""
    messages: list[str] = field(default_factory=list)  # top-level messages, in order
    services: dict[str, list[Method]] = field(default_factory=dict)


@dataclass
class Schema:
    files: list[ProtoFile] = field(default_factory=list)
    messages: dict[str, Message] = field(default_factory=dict)
    enums: dict[str, dict[int, str]] = field(default_factory=dict)


def _tokens(text: str) -> list[str]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            line = text.count("\n", 0, position) + 1
            raise ValueError(f"unexpected character {text[position]!r} on line {line}")
        position = match.end()
        if match.lastgroup:
            tokens.append(match.group())
    return tokens


class _Parser:
    def __init__(self, text: str, schema: Schema) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.schema = schema
        self.file = ProtoFile()
        self.proto3 = False
        self.unresolved: list[tuple[str, Field | Method, str]] = []  # (scope, owner, attribute)

    def peek(self) -> str:
        return self.tokens[self.i] if self.i < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> str:
        if self.i >= len(self.tokens):
            raise ValueError("unexpected end of .proto file")
        token = self.tokens[self.i]
        if expected is not None and token != expected:
            raise ValueError(f"expected {expected!r}, found {token!r}")
        self.i += 1
        return token

    def skip_statement(self) -> None:
        """Up to the next ``;`` at this level, or over a ``{ ... }`` block."""
        depth = 0
        while True:
            token = self.take()
            if token == "{":
                depth += 1
            elif token == "}":
                depth -= 1
                if depth == 0:
                    return
            elif token == ";" and depth == 0:
                return

    def parse(self) -> ProtoFile:
        while self.i < len(self.tokens):
            token = self.take()
            if token == "package":
                self.file.package = self.take()
                self.take(";")
            elif token == "message":
                self.file.messages.append(self.message(self.file.package))
            elif token == "enum":
                self.enum(self.file.package)
            elif token == "service":
                self.service()
            elif token == "syntax":
                self.take("=")
                self.proto3 = self.take().strip("'\"") == "proto3"
                self.take(";")
            elif token == ";":
                continue
            else:  # edition, import, option, extend
                self.i -= 1
                self.skip_statement()
        return self.file

    def message(self, scope: str) -> str:
        name = self.take()
        full = f"{scope}.{name}" if scope else name
        message = Message(full)
        self.schema.messages[full] = message
        self.take("{")
        self.body(message, full)
        return full

    def body(self, message: Message, full: str, in_oneof: bool = False) -> None:
        while (token := self.take()) != "}":
            if token == "message":
                self.message(full)
            elif token == "enum":
                self.enum(full)
            elif token == "oneof":
                self.take()
                self.take("{")
                self.body(message, full, in_oneof=True)  # its fields belong to the message
            elif token in ("option", "reserved", "extensions", "extend"):
                self.i -= 1
                self.skip_statement()
            elif token == ";":
                continue
            else:
                self.i -= 1
                message.fields.append(self.field(full, in_oneof))

    def field(self, scope: str, in_oneof: bool = False) -> Field:
        repeated = False
        label = ""
        type_name = self.take()
        if type_name in ("repeated", "optional", "required"):
            label = type_name
            repeated = type_name == "repeated"
            type_name = self.take()
        map_types = None
        if type_name == "map":
            self.take("<")
            key = self.take()
            self.take(",")
            value = self.take()
            self.take(">")
            map_types = (key, value)
        name = self.take()
        self.take("=")
        number = int(self.take(), 0)
        if self.peek() == "[":
            while self.take() != "]":
                pass
        self.take(";")
        f = Field(name, number, type_name, repeated, map_types)
        f.implicit = self.proto3 and not label and not in_oneof and map_types is None
        if map_types is None and type_name not in SCALARS:
            self.unresolved.append((scope, f, "type"))
        elif map_types is not None and map_types[1] not in SCALARS:
            self.unresolved.append((scope, f, "map_value"))
        return f

    def enum(self, scope: str) -> None:
        name = self.take()
        full = f"{scope}.{name}" if scope else name
        values: dict[int, str] = {}
        self.take("{")
        while (token := self.take()) != "}":
            if token in ("option", "reserved"):
                self.i -= 1
                self.skip_statement()
            elif token != ";":
                self.take("=")
                number = int(self.take(), 0)
                values.setdefault(number, token)
                if self.peek() == "[":
                    while self.take() != "]":
                        pass
                self.take(";")
        self.schema.enums[full] = values

    def service(self) -> None:
        name = self.take()
        methods: list[Method] = []
        self.take("{")
        while (token := self.take()) != "}":
            if token != "rpc":
                if token != ";":
                    self.i -= 1
                    self.skip_statement()
                continue
            method = Method(self.take(), "", "")
            for attribute in ("input_type", "output_type"):
                if attribute == "output_type":
                    self.take("returns")
                self.take("(")
                type_name = self.take()
                if type_name == "stream":
                    type_name = self.take()
                self.take(")")
                setattr(method, attribute, type_name)
                self.unresolved.append((self.file.package, method, attribute))
            if self.peek() == "{":
                self.skip_statement()
            else:
                self.take(";")
            methods.append(method)
        self.file.services[name] = methods


SCALARS = frozenset({
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64",
    "sfixed32", "sfixed64", "bool", "string", "bytes",
})


def _resolve(schema: Schema, scope: str, name: str) -> str:
    """A type name as written in ``scope`` -> its full name (protobuf's scoping rules)."""
    if name.startswith("."):
        return name[1:]
    parts = scope.split(".") if scope else []
    while True:
        candidate = ".".join([*parts, name])
        if candidate in schema.messages or candidate in schema.enums:
            return candidate
        if not parts:
            raise ValueError(f"unknown type {name!r} (in {scope or 'the file'})")
        parts.pop()


def load(path: Path) -> Schema:
    """The messages, enums and services of ``path`` (a .proto file or a directory of them)."""
    files = sorted(path.rglob("*.proto")) if path.is_dir() else [path]
    if len(files) > MAX_FILES:
        raise ValueError(f"more than {MAX_FILES} .proto files in {path}")
    schema = Schema()
    parsers = []
    for file in files:
        try:
            if file.stat().st_size > MAX_FILE_SIZE:
                raise ValueError(f"{file} is larger than {MAX_FILE_SIZE} bytes")
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read {file}: {e}") from None
        parser = _Parser(text, schema)
        try:
            schema.files.append(parser.parse())
        except (ValueError, IndexError) as e:
            raise ValueError(f"{file}: {e}") from None
        except RecursionError:
            raise ValueError(f"{file}: messages nested too deeply") from None
        parsers.append(parser)
    for parser in parsers:  # after all files: a type may come from another one
        for scope, owner, attribute in parser.unresolved:
            if attribute == "map_value":
                assert isinstance(owner, Field) and owner.map_types is not None
                owner.map_types = (owner.map_types[0], _resolve(schema, scope, owner.map_types[1]))
            else:
                setattr(owner, attribute, _resolve(schema, scope, getattr(owner, attribute)))
    return schema


_cache: dict[tuple[Path, tuple[tuple[str, float, int], ...]], Schema] = {}


def load_cached(path: Path) -> Schema:
    """``load``, remembered while the file (or the .proto files of the directory) is unchanged."""
    try:
        files = sorted(path.rglob("*.proto"))[: MAX_FILES + 1] if path.is_dir() else [path]
        stats = tuple((str(f), f.stat().st_mtime, f.stat().st_size) for f in files)
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    key = (path, stats)
    if key not in _cache:
        _cache.clear()
        _cache[key] = load(path)
    return _cache[key]


def find_message(schema: Schema, path: str | None, is_request: bool) -> Message | None:
    """The message type for a body, as mitmproxy chooses it: the input (request) or output
    (response) of the method named by a gRPC path ``/package.Service/Method``, else a
    message named like the method, else the first service's first method, else the first
    message of the first file."""
    rpc = _rpc(path)
    if rpc is not None:
        package, service, method = rpc
        for file in schema.files:
            if file.package != package:
                continue
            for method_def in file.services.get(service, []):
                if method_def.name == method:
                    return schema.messages.get(method_def.input_type if is_request else method_def.output_type)
            for name in file.messages:
                if name.rpartition(".")[2] == method:
                    return schema.messages[name]
    if not schema.files:
        return None
    first = schema.files[0]
    for methods in first.services.values():
        if methods:
            return schema.messages.get(methods[0].input_type if is_request else methods[0].output_type)
    if first.messages:
        return schema.messages[first.messages[0]]
    return None


def _rpc(path: str | None) -> tuple[str, str, str] | None:
    if not path or "?" in path:
        return None
    parts = path.lstrip("/").split("/")
    if len(parts) != 2:
        return None
    package, _, service = parts[0].rpartition(".")
    return package, service, parts[1]
