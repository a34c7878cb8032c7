"""A role-playing agent: a character + a student model (+ adapter, + retrieval) answering a chat.

`Agent.respond(history)` is the single way every consumer (terminal chat, server, evaluation, DPO
sampling) gets a reply, so they all see the same persona prompt. History is a list of user/assistant
messages (system messages in it are kept, after the persona); the agent adds the persona, retrieved
facts and the card's post-history instructions, and drops the oldest turns that no longer fit.

Two prompt styles:
- `chat` (default): a system prompt built from the card, for instruct students and chat templates.
- `character-llm`: the paper's meta prompt and `Name (` protocol for students trained on that format;
  the model may think before it speaks, and thoughts come back in `Reply.thoughts`.

A reply is the character's speech: a leading "Name:" and surrounding whitespace are removed (agent.speech).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Literal

from rolecraft.agent.charllm import respond_character_llm, stream_character_llm
from rolecraft.agent.lorebook import Lorebook
from rolecraft.agent.reply import Reply, Retriever
from rolecraft.agent.speech import Speech
from rolecraft.character import DEFAULT_USER, Character
from rolecraft.errors import RolecraftError
from rolecraft.formats.persona import chat_system_prompt, fit_history, post_history_instructions, with_instructions
from rolecraft.llm.base import ChatModel, Completion, Message, SamplingParams, as_messages
from rolecraft.workspace import Workspace

# Small local students loop ("Maren: Speak with Maren: ...") without a repetition penalty. A local model
# asked for none (1.0, what front ends send by default) gets this one; other values pass as asked, and
# remote APIs always get exactly what the caller asked (OpenAI itself rejects the field).
LOCAL_REPETITION_PENALTY = 1.1
LOCAL_PROVIDERS = ("hf", "llamacpp")

Style = Literal["chat", "character-llm"]
STYLES: tuple[Style, ...] = ("chat", "character-llm")


class Agent:
    def __init__(
        self,
        character: Character,
        model: ChatModel,
        retriever: Retriever | None = None,
        k: int = 5,
        user: str = DEFAULT_USER,
        context_chars: int = 6000,
        style: Style = "chat",
        profile_in_prompt: bool = False,
    ):
        if style not in STYLES:
            raise RolecraftError(f"unknown prompt style '{style}'", f"use one of: {', '.join(STYLES)}")
        self.character = character
        self.model = model
        self.retriever = retriever
        self.k = k
        self.user = user
        # A character budget rather than tokens keeps trimming backend-agnostic (~4 chars/token).
        self.context_chars = context_chars
        self.style = style
        # APC's long-context agent: the whole profile (what fits in half the window) in the prompt.
        self.profile_in_prompt = profile_in_prompt
        # The card's lorebook, activated by the chat as front ends do (the whole profile already holds it).
        self.lorebook = None if profile_in_prompt else Lorebook.from_character(character, context_chars // 4)

    @classmethod
    def from_workspace(cls, workspace: Workspace | str | Path, model: str | ChatModel = "embedded", **options) -> Agent:
        """The agent a build produced (see `assemble`)."""
        ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        return assemble(ws.character(), ws, model, **options)

    @classmethod
    def load(cls, target: str | Path | None, workspace: str | Path | None = None, model: str | ChatModel = "embedded",
             **options) -> Agent:
        """The agent for what a user names: a profile or card file (with its build, if one exists), a
        workspace folder, or the name of a character built under ./workspaces."""
        from rolecraft.agent.loading import resolve_character

        character, ws = resolve_character(target, workspace)
        return assemble(character, ws, model, **options)

    def greeting(self) -> str:
        return self.character.expand(self.character.greeting, self.user)

    def system_prompt(self, facts: Sequence[str] = (), extra: Sequence[str] = ()) -> str:
        profile_chars = self.context_chars // 2 if self.profile_in_prompt else 0
        return chat_system_prompt(self.character, self.user, facts, extra, profile_chars)

    def retrieve(self, history: Sequence[Message]) -> list[str]:
        """The lorebook entries the chat activates, then the facts retrieval finds for the last user turn."""
        lore = self.lorebook.activate(history, self.user) if self.lorebook else []
        query = next((m.content for m in reversed(history) if m.role == "user"), "")
        facts = self.retriever.search(query, self.k) if self.retriever and query else []
        return lore + [f for f in facts if f not in lore]

    def messages(self, history: Sequence[Message | dict], facts: Sequence[str] | None = None) -> list[Message]:
        """The chat prompt for the next reply: persona system message (with the history's own system
        messages merged into it) + the newest turns that fit + post-history instructions."""
        history = as_messages(history)
        extra = [m.content for m in history if m.role == "system"]
        turns = [m for m in history if m.role != "system"]
        facts = self.retrieve(turns) if facts is None else facts
        system = self.system_prompt(facts, extra)
        # The persona always stays; the history gets what is left, but never less than a quarter.
        budget = max(self.context_chars - len(system), self.context_chars // 4)
        kept = with_instructions(fit_history(turns, budget), post_history_instructions(self.character, self.user))
        return [Message(role="system", content=system), *kept]

    def sampling(self, params: SamplingParams | None) -> SamplingParams:
        params = params or SamplingParams()
        if params.repetition_penalty == 1.0 and self.model.provider in LOCAL_PROVIDERS:
            return params.model_copy(update={"repetition_penalty": LOCAL_REPETITION_PENALTY})
        return params

    async def respond(self, history: Sequence[Message | dict], params: SamplingParams | None = None) -> Reply:
        turns = as_messages(history)
        if self.style == "character-llm":
            # The paper's protocol: its meta prompt has no place for retrieved facts, and without
            # params it samples with the reference's settings.
            return await respond_character_llm(self.character, self.model, turns, params)
        facts = await self._retrieve(turns)
        [completion] = await self.model.generate([self.messages(turns, facts)], self.sampling(params))
        said = self.speech().whole(completion)
        thoughts = [completion.reasoning] if completion.reasoning else []
        return Reply(text=said.text, thoughts=thoughts, facts=facts, completion=said)

    async def stream(
        self,
        history: Sequence[Message | dict],
        params: SamplingParams | None = None,
        facts: Sequence[str] | None = None,
    ) -> AsyncIterator[Completion]:
        """The reply in pieces (see ChatModel.stream), shaped as respond() shapes it; thoughts come as
        pieces with `reasoning` and no text. `facts`, when given, replace retrieval. The character-llm
        style yields each thought when it is complete, then the speech."""
        if self.style == "character-llm":
            async for piece in stream_character_llm(self.character, self.model, history, params):
                yield piece
            return
        history = as_messages(history)
        facts = await self._retrieve(history) if facts is None else facts
        speech, last = self.speech(), Completion(text="")
        async for chunk in self.model.stream(self.messages(history, facts), self.sampling(params)):
            if chunk.reasoning:
                yield Completion(text="", reasoning=chunk.reasoning)
            if (said := speech.push(chunk)) is not None:
                yield said
            last = chunk
        yield speech.finish(last.model_copy(update={"reasoning": ""}))

    def speech(self) -> Speech:
        """What turns the model's raw text into this character's speech (see agent.speech)."""
        return Speech([self.character.name, self.character.full_name])

    async def _retrieve(self, history: Sequence[Message]) -> list[str]:
        # A relevance classifier scores every candidate fact: keep that CPU work off the event loop.
        return await asyncio.to_thread(self.retrieve, history) if self.retriever or self.lorebook else []


def assemble(
    character: Character,
    workspace: Workspace | None,
    model: str | ChatModel = "embedded",
    adapter: str | Path | None = "auto",
    retrieval: bool | Literal["none", "rag", "profile"] | None = None,
    **options,
) -> Agent:
    """The one way every consumer (chat, serve, eval, DPO sampling) gets an agent for a character.

    `character` gets its workspace's extracted statements; a model named by spec is loaded with the
    workspace's adapter (`adapter`: auto = the best trained one, none, a name under adapters/, or a
    folder); a ready ChatModel is used as it is (its adapter already chosen). `retrieval`: True or
    "rag" puts the most relevant persona facts in the prompt, "profile" the whole profile (APC's
    long-context agent), False or "none" neither; None: as the build trained and evaluated it, so
    retrieval for a model without a trained adapter and none for one with (see `default_retrieval`)."""
    from rolecraft.agent.loading import fact_retriever
    from rolecraft.llm import load_model
    from rolecraft.workspace import with_statements

    character = with_statements(character, workspace)
    trained = None
    if isinstance(model, str):
        trained = workspace.find_adapter(adapter) if workspace else None
        model = load_model(model, adapter=trained)
    mode = {True: "rag", False: "none", None: default_retrieval(trained is not None)}.get(retrieval, retrieval)
    retriever = fact_retriever(character, workspace) if mode == "rag" else None
    return Agent(character, model, retriever=retriever, profile_in_prompt=mode == "profile", **options)


def default_retrieval(trained: bool) -> str:
    """Facts retrieved into the prompt for a prompt-only agent, none for a trained one: the build trains
    its adapters and scores the agent it serves without them (pipeline.build), and with them the
    embedded student answered every chat question with the same fact."""
    return "none" if trained else "rag"


__all__ = ["Agent", "Reply", "Retriever", "STYLES", "Style", "assemble", "default_retrieval"]
