"""Which characters a server plays, and the agent behind each model id.

Every character built in the workspace root (one workspace, or a folder of them) is served under its
slug, with its best trained adapter; profile and card files named on the command line are served too
(prompt-only until trained). Generation runs either in process — the embedded model on llama.cpp
(its weights loaded once, each trained character's adapter in a context of its own), any other model
as one transformers model with every character's adapter on it (multi_lora) — or on an
OpenAI-compatible server such as vLLM started with `--enable-lora --lora-modules ID=ADAPTER ...`,
where a character's id is its adapter's model id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from rolecraft.agent import Agent, Style, assemble, default_retrieval
from rolecraft.agent.loading import resolve_character
from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.workspace import Workspace, with_statements

log = logging.getLogger(__name__)

LOCAL = "local"


class ServedCharacter(BaseModel):
    id: str  # the model id clients ask for
    character: Character
    workspace: Path | None = None
    adapter: Path | None = None  # None: prompt-only


def discover(files: Sequence[str | Path] = (), workspace: str | Path | None = None) -> list[ServedCharacter]:
    """The characters to serve: every workspace under `workspace`, then the named files."""
    found: list[ServedCharacter] = []
    for ws in _workspaces(Path(workspace)) if workspace else []:
        found.append(_served(with_statements(ws.character(), ws), ws))
    for f in files:
        if not Path(f).exists():
            raise RolecraftError(f"{f} does not exist", "name profile or card files that exist, or use --workspace DIR")
        character, ws = resolve_character(f)
        found.append(_served(with_statements(character, ws), ws))
    unique: dict[str, ServedCharacter] = {}
    for entry in found:
        if entry.id in unique:  # a built workspace beats the same character's card, which comes later
            log.warning("'%s' is served once, from %s", entry.id, unique[entry.id].workspace or "its file")
            continue
        unique[entry.id] = entry
    if not unique:
        raise RolecraftError(
            "no characters to serve",
            "name profile or card files, or pass --workspace DIR holding workspaces with character.json",
        )
    return list(unique.values())


def build_agents(
    served: Sequence[ServedCharacter],
    model: str = "embedded",
    backend: str = LOCAL,
    retrieval: bool | None = None,
    style: Style = "chat",
    **agent_options,
) -> dict[str, Agent]:
    """One Agent per model id. `backend` is `local` (generation in process on `model`) or
    `openai:BASE@URL` (generation on that server; BASE is its model id for prompt-only characters).
    `retrieval` None: facts for prompt-only characters, none for trained ones (agent.default_retrieval)."""
    if backend == LOCAL:
        model_for = _local_models(served, model)
    else:
        model_for = _remote_models(backend)

    return {
        s.id: assemble(s.character, Workspace(s.workspace) if s.workspace else None, model_for(s),
                       retrieval=default_retrieval(s.adapter is not None) if retrieval is None else retrieval,
                       style=style, **agent_options)
        for s in served
    }


def vllm_command(served: Sequence[ServedCharacter], base: str) -> str:
    """The `vllm serve` line that serves every trained character's adapter under its id."""
    trained = [s for s in served if s.adapter]
    if not trained:
        return f"vllm serve {base}"
    ranks = [json.loads((s.adapter / "adapter_config.json").read_text()).get("r", 16) for s in trained]
    # vLLM allocates LoRA slots for a maximum rank chosen from powers of two (default 16).
    rank = next((r for r in (8, 16, 32, 64, 128, 256, 512) if r >= max(ranks)), 512)
    # --max-loras adapters share one batch on the GPU; the others wait in CPU memory or on disk.
    slots = min(len(trained), 8)
    modules = " ".join(f"{s.id}={s.adapter.resolve()}" for s in trained)
    return f"vllm serve {base} --enable-lora --max-lora-rank {rank} --max-loras {slots} --lora-modules {modules}"


def _workspaces(root: Path) -> list[Workspace]:
    if (root / "character.json").exists():
        return [Workspace(root)]
    if not root.is_dir():
        raise RolecraftError(f"{root} is not a folder", "pass a workspace, or a folder of workspaces, to --workspace")
    found = [Workspace(d) for d in sorted(root.iterdir()) if (d / "character.json").exists()]
    if not found:
        log.warning("%s holds no workspace (no */character.json)", root)
    return found


def _served(character: Character, ws: Workspace | None) -> ServedCharacter:
    return ServedCharacter(
        id=character.slug, character=character, workspace=ws.root if ws else None, adapter=ws.best_adapter() if ws else None
    )


def _local_models(served: Sequence[ServedCharacter], spec: str):
    from rolecraft.llm import load_model, parse_spec
    from rolecraft.llm.embedded import embedded_hf_model, llama_cpp_installed
    from rolecraft.llm.hf import HFChatModel
    from rolecraft.llm.multi_lora import MultiLoraModel

    if parse_spec(spec)[0] not in ("hf", "embedded"):
        raise RolecraftError(
            f"--model {spec} cannot be loaded in process for serving",
            "use 'embedded' or hf:PATH, or forward generation with --backend openai:BASE@URL (e.g. to vLLM)",
        )
    if spec == "embedded" and llama_cpp_installed():
        # llama.cpp: the weights are loaded once, each trained character has its own context with its
        # adapter attached (made on its first request), and decoding is ~3x faster than transformers.
        base = load_model("embedded")
        adapted = {s.id: load_model("embedded", adapter=s.adapter) for s in served if s.adapter}
        return lambda s: adapted.get(s.id, base)
    # Any other model: one transformers model, the characters' PEFT adapters switched per request.
    base = embedded_hf_model() if parse_spec(spec)[0] == "embedded" else load_model(spec)
    assert isinstance(base, HFChatModel)
    shared = MultiLoraModel(base)
    for s in served:
        if s.adapter:
            shared.add(s.id, s.adapter)
    return lambda s: shared.view(s.id if s.adapter else None)


def _remote_models(backend: str):
    from rolecraft.llm import parse_spec
    from rolecraft.llm.openai_compat import OpenAIChatModel, split_name

    provider, name = parse_spec(backend)
    base, url = split_name(name)
    if provider != "openai" or url is None:
        raise RolecraftError(
            f"--backend {backend} is not a server",
            "use --backend local, or openai:BASE@URL, e.g. openai:qwen@http://127.0.0.1:8001/v1",
        )
    # The upstream batches (vLLM), and the server's own admission limit decides what is too much, so
    # the client's cap is generous. A front end is waiting: retry once, and allow long generations.
    options = {"base_url": url, "concurrency": 256, "max_retries": 1, "timeout": 600}
    return lambda s: OpenAIChatModel(s.id if s.adapter else base, **options)
