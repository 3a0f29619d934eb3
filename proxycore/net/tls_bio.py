"""The four moves of a TLS connection over memory BIOs, with as few calls as possible.

A TLS layer moves bytes four ways through its ``SSL.Connection``: ciphertext in
(``feed``: BIO_write), plaintext out (``read``: SSL_read), plaintext in (``write``:
SSL_write) and ciphertext out (``take``: BIO_read). pyOpenSSL's public calls wrap each one
in Python-level checks, raise an exception for an empty BIO, read through a temporary
buffer copied into bytes, and give one record (16 KiB) per ``recv``. :class:`RawPipe` calls
the same OpenSSL functions through pyOpenSSL's cffi bindings (``SSL._lib``): the BIOs say
how much they hold, so nothing is read that is not there; everything waiting is decrypted
into one buffer and copied once. :class:`PublicPipe` does the same through the public API,
for bindings without those functions. :func:`pipe_for` picks one; both are tested.
"""

from __future__ import annotations

import threading
from typing import Any

from OpenSSL import SSL

READ_CHUNK = 65536  # ciphertext per public bio_read / plaintext per public recv
MAX_RECORD_PLAINTEXT = 16384  # TLS: 2^14 bytes of plaintext per record at most
SCRATCH_SIZE = 65536 + MAX_RECORD_PLAINTEXT  # reads up to a 64 KiB feed use the thread's buffer


def describe_ssl_error(e: SSL.Error) -> str:
    """``SSL.Error`` carries a list of (lib, func, reason) tuples; keep the reasons."""
    parts = []
    for item in e.args[0] if e.args and isinstance(e.args[0], list) else []:
        if isinstance(item, tuple) and item:
            parts.append(str(item[-1]))
    return ", ".join(parts) or str(e) or type(e).__name__


def read_end(e: SSL.Error) -> str | None:
    """What an error that stopped the reading means: None if the peer is still there (a
    partial record), "" for its close_notify, else the error's description.

    Only this summary leaves the ``except`` block: the exception's traceback references the
    reading function's frame, and kept in one of its own variables would make a reference
    cycle that held that frame's plaintext and buffers until the cyclic garbage collector
    ran (a 128 MiB HTTP/2 upload over TLS peaked ~50 MB higher)."""
    if isinstance(e, SSL.WantReadError):
        return None
    if isinstance(e, SSL.ZeroReturnError):
        return ""
    return describe_ssl_error(e)


class PublicPipe:
    """The four moves through pyOpenSSL's public API."""

    def __init__(self, tls: SSL.Connection) -> None:
        self.tls = tls

    def feed(self, ciphertext: bytes) -> None:
        """Hand ciphertext received from the peer to OpenSSL."""
        if ciphertext:  # pyOpenSSL raises for an empty write
            self.tls.bio_write(ciphertext)

    def read(self) -> tuple[bytes, str | None]:
        """Decrypt everything waiting: (plaintext, how the peer ended the connection if it
        did, see :func:`read_end`)."""
        chunks = []
        end: str | None = None
        while True:
            try:
                chunk = self.tls.recv(READ_CHUNK)
            except SSL.Error as e:
                end = read_end(e)
                break
            if not chunk:
                break
            chunks.append(chunk)  # without a BIO length, only a failing recv says "all read"
        return b"".join(chunks), end

    def write(self, plaintext: bytes) -> None:
        """Encrypt ``plaintext`` into the outgoing BIO (SSL.Error if OpenSSL refuses)."""
        self.tls.sendall(plaintext)

    def take(self) -> bytes:
        """All ciphertext waiting to be sent (b"" if none): read until a short read."""
        out = []
        while True:
            try:
                chunk = self.tls.bio_read(READ_CHUNK)
            except SSL.WantReadError:
                break
            out.append(chunk)
            if len(chunk) < READ_CHUNK:
                break
        return out[0] if len(out) == 1 else b"".join(out)


class RawPipe:
    """The four moves through pyOpenSSL's cffi bindings: one C call per move and record,
    plus a BIO length where it saves a call or a copy. Errors go through pyOpenSSL's own
    mapping (``Connection._raise_ssl_error``), so they are the public calls' exceptions."""

    def __init__(self, tls: SSL.Connection, bindings: _Bindings) -> None:
        self.tls = tls
        self.lib = bindings.lib
        self.alloc = bindings.alloc
        self.scratch = bindings.scratch
        self.unpack = bindings.ffi.unpack  # char[] -> bytes, one copy
        self.from_buffer = bindings.ffi.from_buffer
        self.null = bindings.ffi.NULL
        self.ssl = tls._ssl
        self.into_ssl = tls._into_ssl
        self.from_ssl = tls._from_ssl

    def feed(self, ciphertext: bytes) -> None:
        data = ciphertext if type(ciphertext) is bytes else self.from_buffer(ciphertext)
        if self.lib.BIO_write(self.into_ssl, data, len(ciphertext)) != len(ciphertext):
            raise SSL.Error("BIO_write into a memory BIO failed")  # only without memory

    def read(self) -> tuple[bytes, str | None]:
        """Every waiting record decrypted into one buffer, copied into bytes once: the
        thread's scratch buffer, reused (allocating ~16 KiB for a read of a 100 B record cost
        about as much as its SSL_read), or a new one for a larger feed.

        The buffer holds the ciphertext waiting (plaintext is never longer than its
        records) plus one record, for the one OpenSSL may have half read already; should
        that not do, another buffer follows. The reading stops once OpenSSL holds no
        plaintext and the BIO no ciphertext: another SSL_read would only fail."""
        lib, ssl, bio, null = self.lib, self.ssl, self.into_ssl, self.null
        pieces: list[bytes] = []
        end: str | None = None
        more = True
        while more:
            room = lib.BIO_get_mem_data(bio, null) + lib.SSL_pending(ssl) + MAX_RECORD_PLAINTEXT
            buf = self.scratch.buf if room <= SCRATCH_SIZE else self.alloc("char[]", room)
            total = 0
            while total < room:
                n = lib.SSL_read(ssl, buf + total, room - total)
                if n <= 0:
                    try:
                        self.tls._raise_ssl_error(ssl, n)
                    except SSL.Error as e:
                        end = read_end(e)
                    more = False
                    break
                total += n
                if not lib.SSL_pending(ssl) and not lib.BIO_get_mem_data(bio, null):
                    more = False
                    break
            pieces.append(self.unpack(buf, total))
        return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), end

    def write(self, plaintext: bytes) -> None:
        size = len(plaintext)
        if not size:
            return
        data = plaintext if type(plaintext) is bytes else self.from_buffer(plaintext)
        n = self.lib.SSL_write(self.ssl, data, size)
        if n == size:
            return  # a memory BIO takes everything: the usual case, one call
        if n <= 0:
            self.tls._raise_ssl_error(self.ssl, n)
        self.tls.sendall(memoryview(plaintext)[max(n, 0) :])  # partial writes, if enabled

    def take(self) -> bytes:
        size = self.lib.BIO_get_mem_data(self.from_ssl, self.null)
        if not size:
            return b""
        buf = self.scratch.buf if size <= SCRATCH_SIZE else self.alloc("char[]", size)
        got = self.lib.BIO_read(self.from_ssl, buf, size)  # a memory BIO hands out all it holds
        data: bytes = self.unpack(buf, max(got, 0))
        return data


class _Bindings:
    """pyOpenSSL's cffi bindings (private, hence checked once here)."""

    def __init__(self) -> None:
        self.lib: Any = SSL._lib
        self.ffi: Any = SSL._ffi
        for name in ("BIO_get_mem_data", "BIO_read", "BIO_write", "SSL_read", "SSL_write", "SSL_pending"):
            getattr(self.lib, name)
        SSL.Connection._raise_ssl_error  # noqa: B018 - present, or AttributeError
        self.alloc: Any = self.ffi.new_allocator(should_clear_after_alloc=False)
        self.scratch = _Scratch(self.alloc)


class _Scratch(threading.local):
    """A buffer per thread for read and take: the bytes are copied out before they return,
    and nothing else runs in that thread meanwhile."""

    def __init__(self, alloc: Any) -> None:
        self.buf: Any = alloc("char[]", SCRATCH_SIZE)


try:
    bindings: _Bindings | None = _Bindings()
except AttributeError:  # pragma: no cover - other bindings
    bindings = None


def pipe_for(tls: SSL.Connection) -> RawPipe | PublicPipe:
    """The fastest pipe these bindings allow for ``tls`` (which must use memory BIOs)."""
    if bindings is not None and getattr(tls, "_into_ssl", None) is not None:
        return RawPipe(tls, bindings)
    return PublicPipe(tls)
