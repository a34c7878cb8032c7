"""`rolecraft generate`: one prompt to any backend — the quickest check that a model spec works."""

from __future__ import annotations

from typing import Annotated

import typer

from rolecraft.cli.app import app
from rolecraft.cli.options import Model


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="The user message to send.")],
    model: Model = "embedded",
    system: Annotated[str, typer.Option(help="Optional system message.")] = "",
    max_tokens: Annotated[int, typer.Option(min=1)] = 128,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.0,
    seed: int = 0,
) -> None:
    """Send one message to a model and print its reply (no cache, no character)."""
    from rolecraft.llm import Message, SamplingParams, load_model, run_sync

    backend = load_model(model)
    messages = ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=prompt)]
    [reply] = run_sync(backend.generate([messages], SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)))
    typer.echo(reply.text)
