"""Handing freed memory back to the operating system.

Training steps and outlines' token indices (hundreds of MB to GB each for a JSON schema with
length-bounded strings) are freed into glibc's heap, which keeps the pages: the process's resident
size then only grows. Trimming after big frees lets the next allocation reuse the machine's memory.
"""

from __future__ import annotations

import ctypes
import gc


def trim_heap() -> None:
    """Return the free pages at the top and inside glibc's heap (a few ms)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


def release_memory() -> None:
    """Collect Python's garbage (reference cycles hold tensors too), then trim the heap."""
    gc.collect()
    trim_heap()
