"""One lock for loading weights in this process.

transformers and sentence-transformers build a model under process-wide patches (meta-device
initialisation), so two loads in different threads, such as a student loading in a generation worker
while a discriminator loads on the event loop, can leave one model's parameters on the meta device
("Cannot copy out of meta tensor"). Every lazy load takes this lock.
"""

from __future__ import annotations

import threading

LOAD_LOCK = threading.RLock()
