"""`rolecraft serve`: every character as a model on an OpenAI-compatible server, with a web chat page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rolecraft.cli.app import app
from rolecraft.cli.options import Model


@app.command()
def serve(
    files: Annotated[
        Optional[list[Path]], typer.Argument(help="Profile or card files to serve (prompt-only until trained).")
    ] = None,
    workspace: Annotated[
        Optional[Path],
        typer.Option("--workspace", "-w", help="A workspace, or a folder of workspaces: every character built there."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    model: Model = "embedded",
    backend: Annotated[
        str,
        typer.Option(help="'local' (generate in process on --model, adapters switched per request) or "
                          "openai:BASE@URL (forward to a vLLM server started with --enable-lora --lora-modules)."),
    ] = "local",
    api_key: Annotated[
        Optional[str], typer.Option(envvar="ROLECRAFT_API_KEY", help="Require `Authorization: Bearer KEY` on /v1/*.")
    ] = None,
    style: Annotated[str, typer.Option(help="Prompt style: chat or character-llm.")] = "chat",
    retrieval: Annotated[Optional[bool], typer.Option(
        help="Put the most relevant persona facts into each prompt (default: for characters without a trained "
             "adapter; a trained one is served as the build trained and evaluated it, without).")] = None,
    k: Annotated[int, typer.Option(min=1, help="How many facts to retrieve.")] = 5,
    context_chars: Annotated[int, typer.Option(min=500, help="Prompt budget in characters (oldest turns go first).")] = 6000,
    max_pending: Annotated[int, typer.Option(min=1, help="Requests in progress before new ones get 503.")] = 64,
    max_body: Annotated[int, typer.Option(min=1024, help="Largest request body in bytes (413 above).")] = 1 << 20,
    cors: Annotated[Optional[list[str]], typer.Option(help="Allow browser front ends from this origin (or *).")] = None,
    vllm_command: Annotated[
        bool, typer.Option("--vllm-command", help="Print the `vllm serve` line for these characters' adapters and exit.")
    ] = False,
) -> None:
    """Serve characters as OpenAI-compatible models (`GET /v1/models`, `/v1/chat/completions`,
    `/v1/completions`) and a chat page at http://HOST:PORT/."""
    import logging
    import os

    from rolecraft.errors import RolecraftError
    from rolecraft.serve import ServeSettings, build_agents, create_app, discover
    from rolecraft.serve import vllm_command as vllm_line

    # A server logs to the terminal: requests and the libraries' lines, not a workspace file.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    if style not in ("chat", "character-llm"):
        raise RolecraftError(f"unknown prompt style '{style}'", "use --style chat or --style character-llm")
    if not files and workspace is None:
        from rolecraft.workspace import DEFAULT_ROOT

        workspace = Path(os.environ.get("ROLECRAFT_WORKSPACES", DEFAULT_ROOT))
        if not workspace.is_dir():
            raise RolecraftError(
                f"nothing to serve: no files named and no {workspace}/ folder of built characters",
                "name profile or card files (rolecraft serve alice.json) or pass --workspace DIR",
            )
    served = discover(files or [], workspace)
    if vllm_command:
        from rolecraft.llm.embedded import embedded_checkpoint

        base = str(embedded_checkpoint()) if model == "embedded" else model.partition(":")[2] or model
        typer.echo(vllm_line(served, base))
        return
    agents = build_agents(served, model=model, backend=backend, retrieval=retrieval, style=style, k=k,
                          context_chars=context_chars)
    settings = ServeSettings(api_key=api_key, max_pending=max_pending, max_body_bytes=max_body, cors_origins=cors or [])
    for s in served:
        typer.echo(f"  {s.id:<28} {'adapter ' + str(s.adapter) if s.adapter else 'prompt-only'}", err=True)
    url = f"http://{host}:{port}"
    typer.echo(f"rolecraft: {len(served)} character(s) at {url}/v1 — chat page {url}/", err=True)
    import uvicorn

    app_ = create_app(agents, settings, trained={s.id for s in served if s.adapter})
    uvicorn.run(app_, host=host, port=port, log_level="info")
