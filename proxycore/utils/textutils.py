"""Making untrusted bytes and text safe to show, shared by proxydump, content views and HAR."""

from __future__ import annotations

_CONTROL = str.maketrans({i: "." for i in (*range(32), 127) if chr(i) not in "\r\n\t"})
_CONTROL_ALL = str.maketrans({i: "." for i in (*range(32), 127)})


def escape_control(text: str, keep_spacing: bool = True) -> str:
    """Replace C0 control characters and DEL with "." so hostile data cannot drive a terminal.

    Tabs, CR and LF stay unless ``keep_spacing`` is false."""
    return text.translate(_CONTROL if keep_spacing else _CONTROL_ALL)


def escape_bytes(data: bytes) -> str:
    """Printable ASCII as is, everything else as a Python escape (``\\\\``, ``\\t``, ``\\xff``).

    The same text as mitmproxy's ``bytes_to_escaped_str``: header names and values,
    form keys and values."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        pass
    else:
        if text.isprintable() and "\\" not in text:
            return text
    out = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        elif b == 0x09:
            out.append("\\t")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x0D:
            out.append("\\r")
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def cut_after_lines(text: str, n: int) -> str:
    """The first ``n`` lines of ``text``, the last one with its newline (``n`` >= 1)."""
    pos = -1
    for _ in range(max(n, 1)):
        pos = text.find("\n", pos + 1)
        if pos < 0:
            return text
    return text[: pos + 1]


def is_mostly_binary(data: bytes) -> bool:
    """Judge from the first ~100 bytes whether data is binary rather than text.

    Text if more than 70% is printable ASCII or whitespace, or if more than 95% are not
    control characters and the sample is valid UTF-8 (the sample is cut on a character
    boundary so a multi-byte character is not split)."""
    if not data:
        return False
    sample = data
    if len(data) > 100:
        sample = data[:100]
        for cut in range(100, min(104, len(data))):
            if data[cut] >> 6 != 0b10:  # not a UTF-8 continuation byte
                sample = data[:cut]
                break
    low = sum(1 for b in sample if b < 9 or 13 < b < 32)
    high = sum(1 for b in sample if b > 126)
    plain = len(sample) - low - high
    if plain / len(sample) > 0.7:
        return False
    if (plain + high) / len(sample) > 0.95:
        try:
            sample.decode()
        except UnicodeDecodeError:
            pass
        else:
            return False
    return True
