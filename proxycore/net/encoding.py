"""Content-Encoding codecs: gzip, deflate, br, zstd and identity.

brotli and zstandard are imported at their first use: their extension modules cost ~0.6 MB
resident in every proxy, and most never decode such a body.  So is gzip (its module and
_compression: ~3 M instructions at every start)."""

from __future__ import annotations

import zlib


def decode(data: bytes, encoding: str) -> bytes:
    """Undo a Content-Encoding; ValueError on an unknown coding or corrupt data."""
    coding = encoding.strip().lower()
    try:
        if coding in ("", "identity", "none"):
            return data
        if coding in ("gzip", "x-gzip"):
            import gzip

            return gzip.decompress(data)
        if coding == "deflate":
            try:
                return zlib.decompress(data)
            except zlib.error:
                return zlib.decompress(data, -zlib.MAX_WBITS)  # raw deflate, as some servers send
        if coding == "br":
            import brotli

            return brotli.decompress(data)
        if coding == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    except Exception as e:
        raise ValueError(f"cannot decode {coding} content: {e}") from e
    raise ValueError(f"unknown content encoding: {encoding}")


def encode(data: bytes, encoding: str) -> bytes:
    coding = encoding.strip().lower()
    if coding in ("", "identity", "none"):
        return data
    if coding in ("gzip", "x-gzip"):
        import gzip

        return gzip.compress(data, mtime=0)
    if coding == "deflate":
        return zlib.compress(data)
    if coding == "br":
        import brotli

        return brotli.compress(data)
    if coding == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(f"unknown content encoding: {encoding}")
