"""glibc's malloc kept from handing body-sized buffers back to the kernel after each use.

By default glibc serves an allocation of 128 KiB or more (a threshold that rises to the
largest block freed so far) with its own mapping, and gives the top of its heap back once
twice that threshold is free there. A proxy that buffers a 1 MiB body per response then
faults its buffer's pages in afresh for every response: 235 minor faults per 1 MiB
response, ~20 % of the proxy's CPU in perf (kernel page clearing and fault handling).
Blocks up to MMAP_THRESHOLD now come from the heap, and up to TRIM_THRESHOLD of free heap
stays with the process; larger bodies (64 MiB) still get a mapping of their own that goes
back to the kernel when freed, so a large body leaves no lasting RSS behind.

Only the command-line tools call ``tune`` (one proxy per process); a variable of glibc's
own (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``...) leaves the choice to the user.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024


def tune() -> bool:
    """Set both thresholds where the C library is glibc; True if it took them."""
    if not _glibc():
        return False
    if any(name.startswith("MALLOC_") and name.endswith("_") for name in os.environ):
        return False  # the user tunes malloc through glibc's own variables
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # Setting either one also stops glibc from moving the thresholds by itself.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or not glibc
        return False
