"""The agents an evaluation talks to, all behind one `reply(history)`.

An agent is named on the command line as `NAME=MODEL[,option...]`:

    prompt=embedded                              prompt-only persona on the embedded model
    sft=hf:./base,adapter=sft                    ... with a LoRA adapter (a name under WORKSPACE/adapters/,
                                                 'auto' for the build's best, or a folder)
    rag=embedded,rag=5                           ... with the top-5 retrieved persona statements
    long=embedded,profile                        ... with the whole profile in the prompt (long context)
    cllm=hf:./student,style=character-llm        ... with Character-LLM's meta prompt protocol
    gpt=openai:gpt-4o-mini                       a third-party model given the same persona prompt
    served=openai:alice@http://127.0.0.1:8000/v1,served
                                                 an endpoint that plays the character itself
                                                 (`rolecraft serve`): only the scene is sent

Everything but `served` goes through `rolecraft.agent.Agent.respond`, so baselines and our agents get
the same persona prompt; the interview scene reaches every target as a system message. Models come
from the run's `ModelPool`: loaded once per spec, behind the workspace's request cache, concurrent
replies merged into one batch (an in-process model decodes a whole interview round at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import BaseModel

from rolecraft.agent import STYLES, Agent, Reply, assemble
from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.llm import ChatModel, Message, SamplingParams, parse_spec
from rolecraft.llm.pool import ModelPool
from rolecraft.workspace import Workspace

_SPEC_HELP = (
    "write --agent NAME=MODEL[,adapter=NAME|PATH][,rag[=K]][,profile][,style=character-llm][,served], "
    "e.g. rag=embedded,rag=5"
)


class AgentSpec(BaseModel):
    name: str
    model: str
    adapter: str | None = None
    retrieval: str = "none"  # none | rag (top-k persona statements) | profile (everything, long context)
    k: int = 5
    served: bool = False  # the endpoint applies the persona itself
    style: str = "chat"  # the agent's prompt style: chat | character-llm

    @classmethod
    def parse(cls, text: str) -> AgentSpec:
        name, sep, rest = text.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise RolecraftError(f"agent '{text}' has no NAME=MODEL", _SPEC_HELP)
        model, *options = [part.strip() for part in rest.split(",")]
        parse_spec(model)  # a bad model spec fails here, with its own fix
        fields: dict[str, Any] = {"name": name.strip(), "model": model}
        for option in options:
            key, _, value = option.partition("=")
            if key == "adapter" and value:
                fields["adapter"] = value
            elif key == "rag":
                fields.update(retrieval="rag", k=_positive(value, text) if value else 5)
            elif key == "profile" and not value:
                fields["retrieval"] = "profile"
            elif key == "served" and not value:
                fields["served"] = True
            elif key == "style" and value in STYLES:
                fields["style"] = value
            else:
                raise RolecraftError(f"agent '{text}': unknown option '{option}'", _SPEC_HELP)
        spec = cls(**fields)
        if spec.served and (parse_spec(model)[0] != "openai" or spec.retrieval != "none" or spec.adapter
                            or spec.style != "chat"):
            raise RolecraftError(f"agent '{text}': 'served' is for openai: endpoints that apply their own persona",
                                 "drop 'served', or name the endpoint as openai:MODEL@URL without other options")
        return spec


def _positive(value: str, text: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise RolecraftError(f"agent '{text}': rag={value} is not a positive count", _SPEC_HELP)
    return int(value)


class Target(Protocol):
    name: str

    async def reply(self, history: Sequence[Message], params: SamplingParams) -> Reply: ...


class AgentTarget:
    """An in-process agent; `preamble` (the scene) reaches it as a system message after its persona."""

    def __init__(self, name: str, agent: Agent, preamble: Sequence[Message] = ()):
        self.name = name
        self.agent = agent
        self.preamble = list(preamble)

    async def reply(self, history: Sequence[Message], params: SamplingParams) -> Reply:
        return await self.agent.respond(self.preamble + list(history), params)


class EndpointTarget:
    """An endpoint that is the character already: it gets only the preamble and the chat."""

    def __init__(self, name: str, model: ChatModel, preamble: Sequence[Message] = ()):
        self.name = name
        self.model = model
        self.preamble = list(preamble)

    async def reply(self, history: Sequence[Message], params: SamplingParams) -> Reply:
        [completion] = await self.model.generate([self.preamble + list(history)], params)
        return Reply(text=completion.text.strip(), completion=completion)


def build_target(spec: AgentSpec, character: Character, pool: ModelPool, workspace: Workspace | None = None,
                 scene: str = "") -> Target:
    """The target for one character; `scene` (location and status) is sent as a system message."""
    preamble = [Message(role="system", content=scene)] if scene else []
    if spec.served:
        preamble = preamble or [Message(role="system", content=character.system_prompt)]
        return EndpointTarget(spec.name, pool.get(spec.model), [m for m in preamble if m.content])
    adapter = workspace.find_adapter(spec.adapter) if workspace and spec.adapter else None
    agent = assemble(character, workspace, pool.get(spec.model, adapter), retrieval=spec.retrieval, k=spec.k,
                     style=spec.style)
    if spec.retrieval == "rag" and agent.retriever is None and agent.lorebook is None:
        raise RolecraftError(
            f"agent '{spec.name}': no retrieval for {character.name} (no statements or lore)",
            "extract statements first (rolecraft statements), or use 'profile' for a long-context agent",
        )
    return AgentTarget(spec.name, agent, preamble)
