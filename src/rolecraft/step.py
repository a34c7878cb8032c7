"""The shape every stage of a build shares: a Step.

A step says what it writes (`name`, and `record`: the type of the rows it writes to `<name>.jsonl`),
what it depends on (`reads`: the steps whose outputs it reads; `roles`: the models it calls), its
settings (a pydantic model, part of its fingerprint), and how it runs (`async run(ctx) -> Output`).
Everything else is the runner's (`rolecraft.pipeline.runner`): writing the rows, the manifest entry
(status, fingerprint, counts, rejections by reason, model calls and tokens, seconds, peak memory,
skip reason) and the progress display. `rolecraft build` is an ordered list of steps, and the
single-stage commands (`rolecraft statements`, `rolecraft train dpo`, ...) run the same steps.

    class WordCount(Step):
        name = "word_count"
        record = Count
        reads = (ExperiencesStep,)

        async def run(self, ctx: Context) -> Output:
            rows = ctx.read(ExperiencesStep)
            return Output([Count(words=sum(e.words() for e in rows))])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel

from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.llm.base import ChatModel, Message
from rolecraft.llm.batching import Batched
from rolecraft.llm.cache import Progress
from rolecraft.llm.pool import ModelPool
from rolecraft.progress import progress
from rolecraft.rejections import Rejections
from rolecraft.workspace import Workspace

Role = Literal["teacher", "student", "judge"]


@dataclass
class Models:
    """Which model plays each role, named by spec (`rolecraft.llm`), or a ready ChatModel (Python code,
    tests). Only specs can be trained: the student must be one."""

    teacher: str | ChatModel = "embedded"
    student: str = "embedded"
    judge: str | ChatModel = "embedded"
    discriminator: str = ""  # HF encoder the APC discriminators are fine-tuned from; "" = embedded MiniLM

    def spec(self, role: Role) -> str:
        model = getattr(self, role)
        return model if isinstance(model, str) else model.spec


@dataclass
class Output:
    """What a step hands the runner: its rows, what it rejected and why, a few numbers for the
    manifest and the summary, or the reason it did nothing."""

    records: list[Any] = field(default_factory=list)
    rejections: Rejections = field(default_factory=Rejections)
    info: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


class Responder(Protocol):
    """The agent a step samples replies from (`rolecraft.agent.Agent` is one): the exact prompt it
    serves with, and its model."""

    model: ChatModel

    def messages(self, history: Sequence[Message]) -> list[Message]: ...


@dataclass
class Context:
    """What a running step may use: the workspace (which owns every output), the models by role, and
    the student agent by adapter (the pipeline provides it: agents live above the steps)."""

    workspace: Workspace
    models: Models
    pool: ModelPool
    agents: Callable[[str | None, bool], Responder] | None = None
    progress: Callable[[int, str], AbstractContextManager[Progress]] = progress

    def character(self) -> Character:
        return self.workspace.character()

    def model(self, role: Role, adapter: str | None = None) -> Batched:
        return self.pool.get(getattr(self.models, role), self.workspace.find_adapter(adapter) if adapter else None)

    def read(self, step: type[Step]) -> list[Any]:
        """The rows another step wrote, typed."""
        return self.workspace.read(step.name, step.record)

    def agent(self, adapter: str | None, retrieval: bool = True) -> Responder:
        """The student agent with an adapter (a name under the workspace's adapters/, a folder, or None
        for the base model), with retrieval of persona facts or without."""
        if self.agents is None:
            raise RolecraftError("this step samples the student agent, and none was provided", "run it through the pipeline")
        return self.agents(adapter, retrieval)


class Step(ABC):
    """One stage: see the module notes. Subclasses set the class attributes and implement `run`."""

    name: ClassVar[str]
    record: ClassVar[type[BaseModel] | None] = None  # rows written to `<name>.jsonl`; None: other outputs
    reads: ClassVar[tuple[type[Step], ...]] = ()
    roles: ClassVar[tuple[Role, ...]] = ()
    trains: ClassVar[bool] = False  # trains with torch: runs on the OpenMP thread (rolecraft.compute)

    def __init__(self, settings: BaseModel | None = None, reads: tuple[type[Step], ...] | None = None):
        self.settings = settings
        if reads is not None:  # a build may add inputs from later layers (an adapter, discriminators)
            self.reads = reads

    def fingerprint(self) -> Any:
        """What of this step's own configuration decides its output (its settings by default)."""
        return self.settings.model_dump(mode="json") if self.settings is not None else None

    @abstractmethod
    async def run(self, ctx: Context) -> Output: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
