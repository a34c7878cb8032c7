"""The `rolecraft` command: thin commands over the library, one module per command group.

Heavy libraries are imported inside the commands, so `rolecraft --help` answers instantly.
"""

from __future__ import annotations

import sys

# Each module registers its commands on `app` when imported.
from rolecraft.cli import build, characters, chat, evaluate, experience, faithfulness, models, selfalign, serve, train  # noqa: E402,F401
from rolecraft.cli.app import app  # noqa: E402


def main() -> None:
    """Entry point: user-fixable errors become one line on stderr and exit code 2."""
    from rolecraft.errors import RolecraftError

    try:
        app()
    except RolecraftError as e:
        print(f"rolecraft: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("rolecraft: interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
