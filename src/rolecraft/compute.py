"""The process's one thread for OpenMP work: llama.cpp's decoding, torch's training and encoding.

Both libraries compute with OpenMP, and libgomp gives each thread that starts a parallel computation a
team of worker threads of its own, kept for that thread's life. Once libgomp manages more threads than
there are cores it stops spinning at the barrier that ends every operation and sleeps there instead,
and llama.cpp then decodes at half speed (bench/results/runtime.md, "Threads and the OpenMP barrier").
So every such computation runs on this thread, one at a time, with one team. Two computations at once
on the same cores would only slow each other down anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_here = threading.local()
_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rolecraft-compute",
                             initializer=lambda: setattr(_here, "compute", True))


def on_compute_thread(fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)` on the compute thread (at once when called from it), waiting for its result."""
    if getattr(_here, "compute", False):
        return fn(*args, **kwargs)
    return _thread.submit(fn, *args, **kwargs).result()
