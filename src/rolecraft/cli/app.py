"""The `rolecraft` command group; each command module registers its commands on `app`."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="rolecraft",
    help="Turn a character profile or card into a trained, served and evaluated role-playing agent.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the libraries' progress bars, logs and "
                                          "warnings on the terminal too (else: the workspace's logs/rolecraft.log).")] = False,
) -> None:
    if not verbose:
        from rolecraft.quiet import quiet

        quiet()
