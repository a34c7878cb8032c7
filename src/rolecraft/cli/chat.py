"""`rolecraft chat`: talk to a character in the terminal (or pipe lines in and read replies out)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from rolecraft.cli.app import app
from rolecraft.cli.options import Model, Workspace

HELP = "commands: /reset starts over, /facts shows the facts retrieved for the last reply, " \
       "/thoughts shows its inner thoughts (character-llm style), /quit leaves"


@app.command()
def chat(
    character: Annotated[
        Optional[str],
        typer.Argument(help="A profile or card file, a workspace folder, or a character built under ./workspaces."),
    ] = None,
    workspace: Workspace = None,
    model: Model = "embedded",
    adapter: Annotated[
        str, typer.Option(help="auto (the best trained adapter), none, a name under adapters/, or a folder.")
    ] = "auto",
    style: Annotated[str, typer.Option(help="Prompt style: chat or character-llm.")] = "chat",
    retrieval: Annotated[Optional[bool], typer.Option(
        help="Put the most relevant persona facts into each prompt (default: for characters without a trained "
             "adapter; a trained one is served as the build trained and evaluated it, without).")] = None,
    k: Annotated[int, typer.Option(min=1)] = 5,
    max_tokens: Annotated[int, typer.Option(min=1)] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.7,
    seed: int = 0,
    user: Annotated[str, typer.Option(help="Your name in the conversation ({{user}} in cards).")] = "User",
) -> None:
    """Multi-turn chat with a character. Type /help for commands; with stdin piped, each line is a turn."""
    from rolecraft.agent import Agent
    from rolecraft.errors import RolecraftError
    from rolecraft.llm import SamplingParams, run_sync

    if style not in ("chat", "character-llm"):
        raise RolecraftError(f"unknown prompt style '{style}'", "use --style chat or --style character-llm")
    agent = Agent.load(character, workspace, model=model, adapter=adapter, retrieval=retrieval, k=k, user=user,
                       style=style)
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    run_sync(_session(agent, params, interactive=sys.stdin.isatty()))


async def _session(agent, params, interactive: bool) -> None:
    from rolecraft.errors import RolecraftError
    from rolecraft.llm import Message

    name = agent.character.name
    if interactive:
        typer.echo(f"Chatting with {agent.character.full_name}. {HELP}.", err=True)

    def start() -> list[Message]:
        greeting = agent.greeting()
        if greeting:
            typer.echo(f"{name}: {greeting}")
        return [Message(role="assistant", content=greeting)] if greeting else []

    history, last = start(), None
    turn = 0
    while True:
        line = _read(f"{agent.user}> " if interactive else "")
        if line is None or line.strip() in ("/quit", "/exit"):
            return
        text = line.strip()
        if not text:
            continue
        if text == "/reset":
            history, last = start(), None
        elif text == "/facts":
            facts = last.facts if last else []
            typer.echo("\n".join(f"- {f}" for f in facts) if facts else "(no facts were retrieved for the last reply)")
        elif text == "/thoughts":
            thoughts = last.thoughts if last else []
            typer.echo("\n".join(f"({t})" for t in thoughts) if thoughts else "(no inner thoughts in the last reply)")
        elif text.startswith("/"):
            typer.echo(HELP)
        else:
            history.append(Message(role="user", content=text))
            turn += 1
            try:
                last = await _reply(agent, history, params.model_copy(update={"seed": params.seed + turn}), name)
            except RolecraftError as e:
                if not interactive:
                    raise
                typer.echo(f"rolecraft: error: {e}", err=True)
                history.pop()
                continue
            history.append(Message(role="assistant", content=last.text))


async def _reply(agent, history, params, name: str):
    """Streams the reply to the terminal as it is generated; returns it with its facts and thoughts."""
    from rolecraft.agent import Reply

    if agent.style != "chat":
        reply = await agent.respond(history, params)
        typer.echo(f"{name}: {reply.text}")
        return reply
    facts = agent.retrieve(history)
    typer.echo(f"{name}: ", nl=False)
    pieces = []
    async for chunk in agent.stream(history, params, facts=facts):
        pieces.append(chunk.text)
        sys.stdout.write(chunk.text)
        sys.stdout.flush()
    typer.echo("")
    return Reply(text="".join(pieces).strip(), facts=facts, completion=chunk)


def _read(prompt: str) -> str | None:
    try:
        return input(prompt) if prompt else sys.stdin.readline() or None
    except EOFError:
        return None
