"""One error type for everything a user can fix: the CLI prints it as one line and exits non-zero."""

import json
from typing import Any


class RolecraftError(Exception):
    """A problem the user can fix. `str()` names the problem; `fix` says what to do about it."""

    def __init__(self, problem: str, fix: str = ""):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} — {fix}" if fix else problem)


def shown(value: Any, limit: int = 60) -> str:
    """A value from a user's (or a stranger's) file, quoted for a one-line error: printable, short,
    never a Python byte string."""
    if not isinstance(value, str):
        value = value.decode("latin-1") if isinstance(value, bytes) else json.dumps(value)
    clean = "".join(c if c.isprintable() else "?" for c in value[: limit + 1])
    return f"'{clean[:limit]}…'" if len(clean) > limit else f"'{clean}'"
