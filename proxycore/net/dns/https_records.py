"""HTTPS/SVCB record data (RFC 9460): priority, target name, then key/value parameters."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Any

from proxycore.net.dns import domain_names
from proxycore.net.dns.domain_names import DnsFormatError
from proxycore.utils.strutils import bytes_to_escaped_str, escaped_str_to_bytes


class SVCParamKeys(enum.Enum):
    MANDATORY = 0
    ALPN = 1
    NO_DEFAULT_ALPN = 2
    PORT = 3
    IPV4HINT = 4
    ECH = 5
    IPV6HINT = 6


HTTPSRecordJSON = dict[Any, Any]


@dataclass
class HTTPSRecord:
    priority: int
    target_name: str
    params: dict[int, bytes] = field(default_factory=dict)

    def __repr__(self) -> str:
        return str(self.to_json())

    def to_json(self) -> HTTPSRecordJSON:
        """``{target_name, priority, <key name or number>: escaped value}``, as mitmweb shows it."""
        out: HTTPSRecordJSON = {"target_name": self.target_name, "priority": self.priority}
        for key, value in self.params.items():
            try:
                name: str | int = SVCParamKeys(key).name.lower()
            except ValueError:
                name = key
            out[name] = bytes_to_escaped_str(value)
        return out

    @classmethod
    def from_json(cls, data: HTTPSRecordJSON) -> HTTPSRecord:
        data = dict(data)
        target_name = data.pop("target_name")
        priority = data.pop("priority")
        if not isinstance(target_name, str) or not isinstance(priority, int):
            raise ValueError("HTTPS record needs a target_name string and a priority number")
        params: dict[int, bytes] = {}
        for key, value in data.items():
            number = SVCParamKeys[key.upper()].value if isinstance(key, str) and not key.isdigit() else int(key)
            params[number] = escaped_str_to_bytes(str(value))
        return cls(priority, target_name, params)


def unpack(data: bytes) -> HTTPSRecord:
    """Parse record data; DnsFormatError (a ValueError) if it is malformed."""
    if len(data) < 3:
        raise DnsFormatError("HTTPS record too short")
    (priority,) = struct.unpack_from("!H", data, 0)
    target_name, size = domain_names.unpack_from(data, 2, compressed=False)
    position = 2 + size
    params: dict[int, bytes] = {}
    while position < len(data):
        if position + 4 > len(data):
            raise DnsFormatError("truncated HTTPS record parameter")
        key, length = struct.unpack_from("!HH", data, position)
        position += 4
        if position + length > len(data):
            raise DnsFormatError("HTTPS record parameter runs past the record")
        params[key] = bytes(data[position : position + length])
        position += length
    return HTTPSRecord(priority, target_name, params)


def pack(record: HTTPSRecord) -> bytes:
    out = bytearray(struct.pack("!H", record.priority))
    out += domain_names.pack(record.target_name)
    for key, value in record.params.items():
        out += struct.pack("!HH", key, len(value)) + value
    return bytes(out)
