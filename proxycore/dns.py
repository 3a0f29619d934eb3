"""DNS messages and DNS flows, with mitmproxy's classes, fields and methods.

A DNSFlow is one query and its answer.  Messages keep every header field and the
four sections as lists; ``packed``/``unpack`` are the wire format (RFC 1035) and
``get_state``/``to_json`` the flow-file and web-API forms.  Malformed wire data is
always a ValueError (``DnsFormatError``), never another exception.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import random
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any, ClassVar

from proxycore.connection import Client, Server
from proxycore.flow import Flow
from proxycore.net.dns import classes, domain_names, https_records, op_codes, response_codes, types
from proxycore.net.dns.domain_names import DnsFormatError
from proxycore.net.dns.https_records import HTTPSRecord, SVCParamKeys

__all__ = ["DNSFlow", "DNSMessage", "DnsFormatError", "Question", "ResourceRecord"]

_HEADER = struct.Struct("!HHHHHH")
_QUESTION = struct.Struct("!HH")
_RECORD = struct.Struct("!HHIH")


class _State:
    """get_state/set_state/from_state over a dataclass's fields (nested lists of records too)."""

    if TYPE_CHECKING:  # only dataclasses derive from it
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def get_state(self) -> dict[str, Any]:
        state = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                value = [v.get_state() for v in value]
            state[f.name] = value
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        fresh = type(self).from_state(state)
        self.__dict__.update(fresh.__dict__)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Any:
        return cls(**state)


@dataclass
class Question(_State):
    HEADER: ClassVar[struct.Struct] = _QUESTION

    name: str
    type: int
    class_: int

    def __str__(self) -> str:
        return self.name

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": types.to_str(self.type), "class": classes.to_str(self.class_)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Question:
        return cls(data["name"], types.from_str(data["type"]), classes.from_str(data["class"]))


@dataclass
class ResourceRecord(_State):
    DEFAULT_TTL: ClassVar[int] = 60
    HEADER: ClassVar[struct.Struct] = _RECORD

    name: str
    type: int
    class_: int
    ttl: int
    data: bytes

    def __str__(self) -> str:
        return str(self._data_json())

    # typed views of ``data`` ------------------------------------------------------------

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")

    @text.setter
    def text(self, value: str) -> None:
        self.data = value.encode("utf-8")

    @property
    def ipv4_address(self) -> IPv4Address:
        return IPv4Address(self.data)

    @ipv4_address.setter
    def ipv4_address(self, ip: IPv4Address) -> None:
        self.data = ip.packed

    @property
    def ipv6_address(self) -> IPv6Address:
        return IPv6Address(self.data)

    @ipv6_address.setter
    def ipv6_address(self, ip: IPv6Address) -> None:
        self.data = ip.packed

    @property
    def domain_name(self) -> str:
        return domain_names.unpack(self.data)

    @domain_name.setter
    def domain_name(self, name: str) -> None:
        self.data = domain_names.pack(name)

    @property
    def https_alpn(self) -> tuple[bytes, ...] | None:
        raw = https_records.unpack(self.data).params.get(SVCParamKeys.ALPN.value)
        if raw is None:
            return None
        protocols, position = [], 0
        while position < len(raw):
            size = raw[position]
            protocols.append(raw[position + 1 : position + 1 + size])
            position += size + 1
        return tuple(protocols)

    @https_alpn.setter
    def https_alpn(self, alpn: Iterable[bytes] | None) -> None:
        record = https_records.unpack(self.data)
        if alpn is None:
            record.params.pop(SVCParamKeys.ALPN.value, None)
        else:
            record.params[SVCParamKeys.ALPN.value] = b"".join(bytes([len(p)]) + p for p in alpn)
        self.data = https_records.pack(record)

    @property
    def https_ech(self) -> str | None:
        raw = https_records.unpack(self.data).params.get(SVCParamKeys.ECH.value)
        return None if raw is None else base64.b64encode(raw).decode()

    @https_ech.setter
    def https_ech(self, ech: str | None) -> None:
        record = https_records.unpack(self.data)
        if ech is None:
            record.params.pop(SVCParamKeys.ECH.value, None)
        else:
            record.params[SVCParamKeys.ECH.value] = base64.b64decode(ech)
        self.data = https_records.pack(record)

    def _data_json(self) -> Any:
        """What the web UI shows as the record's data."""
        try:
            if self.type == types.A:
                return str(self.ipv4_address)
            if self.type == types.AAAA:
                return str(self.ipv6_address)
            if self.type in (types.NS, types.CNAME, types.PTR):
                return self.domain_name
            if self.type == types.TXT:
                return self.text
            if self.type == types.HTTPS:
                return https_records.unpack(self.data).to_json()
        except ValueError:
            return f"0x{self.data.hex()} (invalid {types.to_str(self.type)} data)"
        return f"0x{self.data.hex()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": types.to_str(self.type),
            "class": classes.to_str(self.class_),
            "ttl": self.ttl,
            "data": self._data_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResourceRecord:
        record = cls(data["name"], types.from_str(data["type"]), classes.from_str(data["class"]), data["ttl"], b"")
        value = data["data"]
        try:
            if record.type == types.A:
                record.ipv4_address = IPv4Address(value)
            elif record.type == types.AAAA:
                record.ipv6_address = IPv6Address(value)
            elif record.type in (types.NS, types.CNAME, types.PTR):
                record.domain_name = value
            elif record.type == types.TXT:
                record.text = value
            elif record.type == types.HTTPS:
                record.data = https_records.pack(HTTPSRecord.from_json(value))
            else:
                raise ValueError
        except (ValueError, TypeError, KeyError, AttributeError):
            record.data = bytes.fromhex(str(value).removeprefix("0x").partition(" (")[0])
        return record

    # constructors for the common record types -------------------------------------------

    @classmethod
    def A(cls, name: str, ip: IPv4Address, *, ttl: int = DEFAULT_TTL) -> ResourceRecord:  # noqa: N802
        return cls(name, types.A, classes.IN, ttl, ip.packed)

    @classmethod
    def AAAA(cls, name: str, ip: IPv6Address, *, ttl: int = DEFAULT_TTL) -> ResourceRecord:  # noqa: N802
        return cls(name, types.AAAA, classes.IN, ttl, ip.packed)

    @classmethod
    def CNAME(cls, alias: str, canonical: str, *, ttl: int = DEFAULT_TTL) -> ResourceRecord:  # noqa: N802
        return cls(alias, types.CNAME, classes.IN, ttl, domain_names.pack(canonical))

    @classmethod
    def PTR(cls, inaddr: str, ptr: str, *, ttl: int = DEFAULT_TTL) -> ResourceRecord:  # noqa: N802
        return cls(inaddr, types.PTR, classes.IN, ttl, domain_names.pack(ptr))

    @classmethod
    def TXT(cls, name: str, text: str, *, ttl: int = DEFAULT_TTL) -> ResourceRecord:  # noqa: N802
        return cls(name, types.TXT, classes.IN, ttl, text.encode("utf-8"))

    @classmethod
    def HTTPS(cls, name: str, record: HTTPSRecord, ttl: int = DEFAULT_TTL) -> ResourceRecord:  # noqa: N802
        return cls(name, types.HTTPS, classes.IN, ttl, https_records.pack(record))


def _check_range(what: str, value: int, high: int) -> None:
    if not 0 <= value <= high:
        raise ValueError(f"DNS message's {what} {value} is out of bounds.")


@dataclass
class DNSMessage(_State):
    HEADER: ClassVar[struct.Struct] = _HEADER

    id: int
    query: bool
    op_code: int
    authoritative_answer: bool
    truncation: bool
    recursion_desired: bool
    recursion_available: bool
    reserved: int
    response_code: int
    questions: list[Question]
    answers: list[ResourceRecord]
    authorities: list[ResourceRecord]
    additionals: list[ResourceRecord]
    timestamp: float | None = None

    def __str__(self) -> str:
        sections = itertools.chain(self.questions, self.answers, self.authorities, self.additionals)
        return "\r\n".join(str(x) for x in sections)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DNSMessage:
        state = dict(state)
        state["questions"] = [Question.from_state(q) for q in state["questions"]]
        for section in ("answers", "authorities", "additionals"):
            state[section] = [ResourceRecord.from_state(r) for r in state[section]]
        return cls(**state)

    @property
    def content(self) -> bytes:
        return self.packed

    @property
    def question(self) -> Question | None:
        """The question, when there is exactly one (as in practically every query)."""
        return self.questions[0] if len(self.questions) == 1 else None

    @property
    def size(self) -> int:
        """Bytes of record data in the three record sections."""
        records = itertools.chain(self.answers, self.authorities, self.additionals)
        return sum(len(r.data) for r in records)

    def _reply(self, response_code: int, answers: list[ResourceRecord], available: bool) -> DNSMessage:
        return DNSMessage(
            id=self.id, query=False, op_code=self.op_code, authoritative_answer=False,
            truncation=False, recursion_desired=self.recursion_desired,
            recursion_available=available, reserved=0, response_code=response_code,
            questions=self.questions, answers=answers, authorities=[], additionals=[],
            timestamp=time.time(),
        )

    def fail(self, response_code: int) -> DNSMessage:
        """A reply to this query with an error code."""
        if response_code == response_codes.NOERROR:
            raise ValueError("response_code must be an error code.")
        return self._reply(response_code, [], False)

    def succeed(self, answers: list[ResourceRecord]) -> DNSMessage:
        """A NOERROR reply to this query with ``answers``."""
        return self._reply(response_codes.NOERROR, answers, True)

    # wire format -----------------------------------------------------------------------

    @classmethod
    def unpack(cls, buffer: bytes, timestamp: float | None = None) -> DNSMessage:
        """Parse a whole datagram; DnsFormatError (a ValueError) if malformed or longer."""
        size, message = cls.unpack_from(buffer, 0, timestamp)
        if size != len(buffer):
            raise DnsFormatError(f"{len(buffer) - size} bytes after the DNS message")
        return message

    @classmethod
    def unpack_from(cls, buffer: bytes | bytearray, offset: int, timestamp: float | None = None) -> tuple[int, DNSMessage]:
        """Parse the message at ``offset``; returns its length and the message."""
        buffer = bytes(buffer)
        start = offset
        if len(buffer) - offset < _HEADER.size:
            raise DnsFormatError("DNS message shorter than its header")
        ident, flags, n_questions, n_answers, n_authorities, n_additionals = _HEADER.unpack_from(buffer, offset)
        offset += _HEADER.size
        message = cls(
            id=ident,
            query=not flags & 0x8000,
            op_code=(flags >> 11) & 0xF,
            authoritative_answer=bool(flags & 0x0400),
            truncation=bool(flags & 0x0200),
            recursion_desired=bool(flags & 0x0100),
            recursion_available=bool(flags & 0x0080),
            reserved=(flags >> 4) & 0x7,
            response_code=flags & 0xF,
            questions=[], answers=[], authorities=[], additionals=[],
            timestamp=timestamp,
        )
        for i in range(n_questions):
            name, used = cls._name(buffer, offset, f"question #{i}")
            offset += used
            if offset + _QUESTION.size > len(buffer):
                raise DnsFormatError(f"question #{i}: truncated")
            qtype, qclass = _QUESTION.unpack_from(buffer, offset)
            offset += _QUESTION.size
            message.questions.append(Question(name, qtype, qclass))
        for section, count, label in (
            (message.answers, n_answers, "answer"),
            (message.authorities, n_authorities, "authority"),
            (message.additionals, n_additionals, "additional"),
        ):
            for i in range(count):
                name, used = cls._name(buffer, offset, f"{label} #{i}")
                offset += used
                if offset + _RECORD.size > len(buffer):
                    raise DnsFormatError(f"{label} #{i}: truncated")
                rtype, rclass, ttl, length = _RECORD.unpack_from(buffer, offset)
                offset += _RECORD.size
                end = offset + length
                if end > len(buffer):
                    raise DnsFormatError(f"{label} #{i}: record data runs past the message")
                data = domain_names.decompress_record_data(buffer, offset, end, rtype)
                section.append(ResourceRecord(name, rtype, rclass, ttl, data))
                offset = end
        return offset - start, message

    @staticmethod
    def _name(buffer: bytes, offset: int, where: str) -> tuple[str, int]:
        try:
            return domain_names.unpack_from(buffer, offset)
        except DnsFormatError as e:
            raise DnsFormatError(f"{where}: {e}") from None

    @property
    def packed(self) -> bytes:
        """The message on the wire (names uncompressed); ValueError for out-of-range fields."""
        _check_range("id", self.id, 0xFFFF)
        _check_range("op_code", self.op_code, 0xF)
        _check_range("reserved value of", self.reserved, 0x7)
        _check_range("response_code", self.response_code, 0xF)
        flags = (
            (0 if self.query else 0x8000)
            | self.op_code << 11
            | (0x0400 if self.authoritative_answer else 0)
            | (0x0200 if self.truncation else 0)
            | (0x0100 if self.recursion_desired else 0)
            | (0x0080 if self.recursion_available else 0)
            | self.reserved << 4
            | self.response_code
        )
        out = bytearray(_HEADER.pack(
            self.id, flags, len(self.questions), len(self.answers), len(self.authorities), len(self.additionals)
        ))
        try:
            for q in self.questions:
                out += domain_names.pack(q.name) + _QUESTION.pack(q.type, q.class_)
            for r in itertools.chain(self.answers, self.authorities, self.additionals):
                out += domain_names.pack(r.name) + _RECORD.pack(r.type, r.class_, r.ttl, len(r.data)) + r.data
        except struct.error as e:
            raise ValueError(f"DNS message field out of range: {e}") from None
        return bytes(out)

    # web API -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The message as mitmweb's front end expects it (names instead of numbers)."""
        out: dict[str, Any] = {
            "id": self.id,
            "query": self.query,
            "op_code": op_codes.to_str(self.op_code),
            "authoritative_answer": self.authoritative_answer,
            "truncation": self.truncation,
            "recursion_desired": self.recursion_desired,
            "recursion_available": self.recursion_available,
            "response_code": response_codes.to_str(self.response_code),
            "status_code": response_codes.http_equiv_status_code(self.response_code),
            "questions": [q.to_json() for q in self.questions],
            "answers": [r.to_json() for r in self.answers],
            "authorities": [r.to_json() for r in self.authorities],
            "additionals": [r.to_json() for r in self.additionals],
            "size": self.size,
        }
        if self.timestamp:
            out["timestamp"] = self.timestamp
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DNSMessage:
        return cls(
            id=data["id"],
            query=data["query"],
            op_code=op_codes.from_str(data["op_code"]),
            authoritative_answer=data["authoritative_answer"],
            truncation=data["truncation"],
            recursion_desired=data["recursion_desired"],
            recursion_available=data["recursion_available"],
            reserved=0,
            response_code=response_codes.from_str(data["response_code"]),
            questions=[Question.from_json(q) for q in data["questions"]],
            answers=[ResourceRecord.from_json(r) for r in data["answers"]],
            authorities=[ResourceRecord.from_json(r) for r in data["authorities"]],
            additionals=[ResourceRecord.from_json(r) for r in data["additionals"]],
            timestamp=data.get("timestamp") or None,
        )

    def copy(self) -> DNSMessage:
        """A copy with a fresh random id (a replayed query must not match the old answer)."""
        state = self.get_state()
        state["id"] = random.randint(0, 0xFFFF)
        return DNSMessage.from_state(state)


class DNSFlow(Flow):
    """One DNS query (``request``) and its answer (``response``, None until there is one)."""

    type = "dns"
    request: DNSMessage
    response: DNSMessage | None

    def __init__(self, client_conn: Client, server_conn: Server, live: bool = False) -> None:
        super().__init__(client_conn, server_conn, live)
        self.response = None

    def __repr__(self) -> str:
        return f"<DNSFlow request={getattr(self, 'request', None)!r} response={self.response!r}>"

    def state_with(self, client_conn: Any, server_conn: Any) -> dict[str, Any]:
        state = super().state_with(client_conn, server_conn)
        state["request"] = self.request.get_state()
        state["response"] = self.response.get_state() if self.response else None
        return state

    def set_state_with(self, state: dict[str, Any], client_conn: Client, server_conn: Server) -> None:
        self.request = DNSMessage.from_state(state["request"])
        response = state.get("response")
        self.response = DNSMessage.from_state(response) if response else None
        super().set_state_with(state, client_conn, server_conn)
