"""Self-alignment in one process (shard after shard), and the self-alignment step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rolecraft.character import Character
from rolecraft.llm import load_model, run_sync
from rolecraft.llm.base import ChatModel
from rolecraft.progress import progress
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.selfalign import SelfAlignConfig, SelfAlignDialogue, synthesize
from rolecraft.synth.selfalign_shards import STAGE, SelfAlignResult, collect, pending, prepare, save_shard
from rolecraft.workspace import Workspace


def run_selfalign(
    characters: Sequence[Character], model: str | ChatModel, workspace: Workspace, config: SelfAlignConfig,
    options: dict[str, Any] | None = None, encoder: str | Path | None = None,
) -> SelfAlignResult:
    """In-process run: shard after shard, in one process.

    No request cache here, on purpose: a cache hit on a prompt repeated in an earlier shard would
    shrink a batch, and backends that seed sampling per batch (hf) would then sample differently
    from a Ray run. The finished shard is the unit of resume for both.
    """
    started = time.perf_counter()
    spec = model if isinstance(model, str) else model.spec
    shards = prepare(characters, spec, config, options, encoder)
    todo = pending(workspace, shards)
    if todo:
        backend = model if isinstance(model, ChatModel) else load_model(model, **(options or {}))

        async def run_shards(advance) -> None:  # one event loop for all shards: the backend's lock lives in it
            for shard in todo:
                save_shard(workspace, shard, await synthesize(backend, shard.tasks, config))
                advance(len(shard.tasks))

        with progress(len(characters), "self-alignment (characters)") as advance:
            advance(len(characters) - sum(len(s.tasks) for s in todo))
            run_sync(run_shards(advance))
    return collect(workspace, shards, len(shards) - len(todo), started, "in-process")


class SelfAlignStep(Step):
    """Writes `selfalign.jsonl`. In a build the teacher simulates the character's own dialogues; for a
    set of characters (`rolecraft selfalign`) pass them as `characters`, and `ray` runs the shards on
    Ray Data (`selfalign_ray`)."""

    name = STAGE
    record = SelfAlignDialogue
    roles = ("teacher",)

    def __init__(self, settings: SelfAlignConfig, characters: Sequence[Character] | None = None,
                 ray: dict[str, Any] | None = None, encoder: str | Path | None = None):
        super().__init__(settings)
        self.characters, self.ray, self.encoder = characters, ray, encoder

    def fingerprint(self) -> Any:
        cast = [c.model_dump(mode="json") for c in self.characters] if self.characters else None
        return [super().fingerprint(), cast, self.ray, str(self.encoder or "")]

    async def run(self, ctx: Context) -> Output:
        cast = list(self.characters or [ctx.character()])
        spec = ctx.models.teacher
        if self.ray is not None:
            from rolecraft.synth.selfalign_ray import run_selfalign_ray

            work = lambda: run_selfalign_ray(cast, spec, ctx.workspace, self.settings, encoder=self.encoder, **self.ray)  # noqa: E731
        else:
            work = lambda: run_selfalign(cast, spec, ctx.workspace, self.settings, encoder=self.encoder)  # noqa: E731
        # Shards run on an event loop of their own (their backend's lock lives in it).
        result = await asyncio.to_thread(work)
        info = result.summary.model_dump(exclude={"rejections"})
        return Output(result.train, Rejections(result.summary.rejections), info)
