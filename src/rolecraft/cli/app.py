"""The `rolecraft` command group; each command module registers its commands on `app`."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="rolecraft",
    help="Turn a character profile or card into a trained, served and evaluated role-playing agent.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Keeps `rolecraft` a command group even while only one command is registered."""
