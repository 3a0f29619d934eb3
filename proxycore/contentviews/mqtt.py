"""The MQTT view: one MQTT 3.1.1 control packet (as a TCP message) in a line or a few.

CONNECT shows the client id, will and credentials; PUBLISH the payload and topic;
SUBSCRIBE the topic filters; PINGREQ/PINGRESP their name.  Other packet types are named
as not supported, the way mitmproxy's view words it.
"""

from __future__ import annotations

import struct

from proxycore.contentviews.api import Contentview, Metadata
from proxycore.utils.strutils import bytes_to_escaped_str

NAMES = ["reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
         "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "reserved"]


def _remaining_length(packet: bytes) -> tuple[int, int]:
    """The variable-length "remaining length" and where the packet's body starts."""
    value, shift = 0, 0
    for i in range(1, 5):
        if i >= len(packet):
            raise ValueError("MQTT packet ends inside its length")
        byte = packet[i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i + 1
    raise ValueError("Malformed Remaining Length")


def _field(packet: bytes, offset: int) -> tuple[bytes, int]:
    """A two-byte length and that many bytes; returns them and the offset after."""
    if offset + 2 > len(packet):
        raise ValueError("MQTT field ends early")
    (length,) = struct.unpack_from("!H", packet, offset)
    return packet[offset + 2 : offset + 2 + length], offset + 2 + length


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"MQTT string is not UTF-8: {e}") from None


def _connect(packet: bytes, body: int) -> str:
    if body + 10 > len(packet):
        raise ValueError("MQTT CONNECT header ends early")
    flags = packet[body + 7]
    has_will, has_user, has_password = bool(flags & 0x04), bool(flags & 0x80), bool(flags & 0x40)
    offset = body + 10
    values: dict[str, bytes] = {}
    wanted = ["ClientId"] + (["WillTopic", "WillMessage"] if has_will else [])
    wanted += (["UserName"] if has_user else []) + (["Password"] if has_password else [])
    while offset < len(packet):
        if not wanted:
            raise ValueError("unexpected field in MQTT CONNECT payload")
        raw, offset = _field(packet, offset)
        values[wanted.pop(0)] = raw
    if "ClientId" not in values:
        raise ValueError("MQTT CONNECT without a client id")

    def text_or_none(name: str) -> str:
        return _text(values[name]) if name in values else "None"

    def bytes_or_none(name: str) -> str:
        return bytes_to_escaped_str(values.get(name, b"None"))

    return (
        "[CONNECT]\n\n"
        f"Client Id: {_text(values['ClientId'])}\n"
        f"Will Topic: {text_or_none('WillTopic')}\n"
        f"Will Message: {bytes_or_none('WillMessage')}\n"
        f"User Name: {text_or_none('UserName')}\n"
        f"Password: {bytes_or_none('Password')}\n"
    )


def describe(packet: bytes) -> str:
    if not packet:
        raise ValueError("empty MQTT packet")
    kind = packet[0] >> 4
    name = NAMES[kind]
    remaining, _ = _remaining_length(packet)
    body = len(packet) - remaining
    if body < 2:
        raise ValueError("MQTT packet shorter than its length says")
    if name == "CONNECT":
        return _connect(packet, body)
    if name == "PUBLISH":
        qos = (packet[0] >> 1) & 0x03
        topic, offset = _field(packet, body)
        if qos in (1, 2):
            offset += 2
        return f"[PUBLISH] '{bytes_to_escaped_str(packet[offset:])}' to topic '{bytes_to_escaped_str(topic)}'"
    if name == "SUBSCRIBE":
        filters: dict[str, None] = {}
        offset = body + 2
        while offset < len(packet):
            raw, offset = _field(packet, offset)
            offset += 1  # requested QoS
            filters[_text(raw)] = None
        return "[SUBSCRIBE] sent topic filters: " + ", ".join(f"'{f}'" for f in filters)
    if name in ("PINGREQ", "PINGRESP"):
        return f"[{name}]"
    return f"Packet type {name} is not supported yet!"


class MQTTContentview(Contentview):
    name = "MQTT"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        return describe(data)


mqtt = MQTTContentview()
