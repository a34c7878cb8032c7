"""rolecraft: character description in, trained and served role-playing agent out."""

import os

from rolecraft.character import Character, LoreEntry
from rolecraft.errors import RolecraftError

# llama.cpp's and torch's threads meet at an OpenMP barrier after every operation, and OpenMP reads
# how long to wait there once, when the first library that uses it loads. Sleeping at once (the
# passive policy) halves llama.cpp's decoding speed on an idle machine; spinning long (the default)
# turns a busy machine's time slices into seconds per token. A short spin costs neither
# (bench/results/runtime.md, "Threads and the OpenMP barrier").
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

__all__ = ["Character", "LoreEntry", "RolecraftError"]
__version__ = "0.1.0"
