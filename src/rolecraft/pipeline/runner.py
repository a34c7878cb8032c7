"""The step runner: the one place that writes a step's rows and its manifest entry.

Each step is fingerprinted by what decides its output: its own settings, the models of the roles it
calls, the character's source, and the fingerprints of the steps it reads. A step whose stored
fingerprint still matches is skipped, so a second identical run does nothing and a run interrupted
anywhere resumes at the step it was in, whose finished model calls come back from the request cache.
A changed setting re-runs only that step and the steps that read it, directly or not.

Per step the manifest records: status (done / skipped / running), fingerprint, rows written,
rejections by reason, model calls and tokens by model, seconds, peak memory, the skip reason and the
step's own numbers (`info`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from rolecraft.character import Character
from rolecraft.compute import on_compute_thread
from rolecraft.errors import RolecraftError
from rolecraft.llm.base import run_sync
from rolecraft.llm.pool import ModelPool
from rolecraft.memory import release_memory
from rolecraft.progress import console
from rolecraft.quiet import log_to
from rolecraft.step import Context, Models, Output, Step
from rolecraft.workspace import Workspace

log = logging.getLogger(__name__)

VERSION = 2  # bump when a step's output format changes, to invalidate older workspaces


class StepRun(BaseModel):
    name: str
    cached: bool  # finished earlier with the same fingerprint: not run again
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    rows: int | None = None
    rejections: dict[str, int] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)
    skipped: str | None = None
    usage: dict[str, dict[str, int]] = Field(default_factory=dict)  # by model: calls, cached, tokens

    @property
    def calls(self) -> int:
        return sum(u.get("calls", 0) for u in self.usage.values())

    @property
    def cached_calls(self) -> int:
        return sum(u.get("cached", 0) for u in self.usage.values())


def fingerprint(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def source_of(character: Character) -> dict[str, Any]:
    """The parts of a character that come from its file (not what steps add, such as statements)."""
    return character.model_dump(exclude={"statements", "source"})


def step_fingerprint(step: Step, ctx: Context, inputs: dict[str, str]) -> str:
    models = {role: ctx.models.spec(role) for role in step.roles}
    reads = [inputs[s.name] for s in step.reads]
    # A workspace for a set of characters (self-alignment) has no one character of its own.
    ws = ctx.workspace
    character = source_of(ws.stored_character()) if ws.character_path.exists() else None
    return fingerprint(VERSION, step.name, step.fingerprint(), models, character, reads)


class _PeakMemory:
    """Samples this process's resident memory in a thread; torch frees memory between steps, so the
    process-wide peak (ru_maxrss) would not say which step needed it."""

    def __init__(self, every: float = 0.2):
        import psutil

        self.process, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self) -> _PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def _usage(ctx: Context) -> dict[str, dict[str, int]]:
    """Calls and tokens so far by model: its spec, and its adapter's folder where it has one."""
    return {f"{model.spec}@{adapter.partition('#')[0]}" if adapter else model.spec: model.usage.as_dict()
            for (_, adapter), model in ctx.pool.models.items()}


def _spent(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    spent = {}
    for model, counts in after.items():
        diff = {k: v - before.get(model, {}).get(k, 0) for k, v in counts.items()}
        if any(diff.values()):
            spent[model] = diff
    return spent


async def run_steps(
    steps: Sequence[Step], ctx: Context, on_step: Callable[[Step, int, int], None] | None = None
) -> list[StepRun]:
    """Run the steps in order, skipping those whose fingerprint is unchanged."""
    ws = ctx.workspace
    inputs: dict[str, str] = {}
    runs: list[StepRun] = []
    for number, step in enumerate(steps, 1):
        for read in step.reads:
            if read.name not in inputs:
                stored = ws.entry(read.name)
                if stored.get("status") not in ("done", "skipped"):
                    raise RolecraftError(f"step '{step.name}' reads '{read.name}', which has not run in {ws.root}",
                                         f"run the {read.name} step first (or `rolecraft build`)")
                inputs[read.name] = stored["fingerprint"]
        key = step_fingerprint(step, ctx, inputs)
        inputs[step.name] = key
        stored = ws.entry(step.name)
        if stored.get("status") in ("done", "skipped") and stored.get("fingerprint") == key:
            log.info("%s: unchanged (fingerprint %s)", step.name, key[:12])
            runs.append(StepRun(name=step.name, cached=True, rows=stored.get("rows"), info=stored.get("info", {}),
                                rejections=stored.get("rejections", {}), skipped=stored.get("skipped")))
            continue
        if on_step:
            on_step(step, number, len(steps))
        ws.record(step.name, status="running", fingerprint=key)
        runs.append(await _run(step, ctx, key))
    return runs


async def _run(step: Step, ctx: Context, key: str) -> StepRun:
    ws = ctx.workspace
    before, started = _usage(ctx), time.monotonic()
    with _PeakMemory() as memory:
        out = await (_on_compute_thread(step, ctx) if step.trains else step.run(ctx))
    release_memory()
    run = StepRun(
        name=step.name, cached=False, seconds=round(time.monotonic() - started, 1),
        peak_rss_mb=round(memory.peak / 2**20), rows=len(out.records) if step.record else None,
        rejections=dict(out.rejections), info=out.info, skipped=out.skipped, usage=_spent(before, _usage(ctx)),
    )
    if step.record is not None:  # a skipped step leaves no rows from an older run behind
        ws.write(step.name, out.records)
    ws.record(
        step.name, status="skipped" if out.skipped else "done", fingerprint=key, rows=run.rows,
        rejections=run.rejections, skipped=out.skipped, usage=run.usage, seconds=run.seconds,
        peak_rss_mb=run.peak_rss_mb, info=out.info, settings=step.fingerprint(),
        models={role: ctx.models.spec(role) for role in step.roles},
    )
    log.info("%s: %s in %.1f s, rows %s, rejections %s, usage %s", step.name, out.skipped or "done", run.seconds,
             run.rows, run.rejections, run.usage)
    if out.rejections:
        kept = f"kept {run.rows}, " if run.rows is not None else ""
        console.print(f"[yellow]{step.name}: {kept}rejected {sum(out.rejections.values())} ({out.rejections.summary()})")
    return run


async def _on_compute_thread(step: Step, ctx: Context) -> Output:
    """`step.run(ctx)` on the process's one OpenMP thread (rolecraft.compute): torch's worker threads,
    started anywhere else and left behind, would halve llama.cpp's decoding speed for the rest of the build."""
    return await asyncio.to_thread(on_compute_thread, asyncio.run, step.run(ctx))


def context(workspace: Workspace, models: Models) -> Context:
    """A context whose student agents are assembled the one way every consumer gets them."""
    pool = ModelPool(workspace.cache_path)

    def agents(adapter: str | None, retrieval: bool):
        from rolecraft.agent import assemble

        model = pool.get(models.student, workspace.find_adapter(adapter) if adapter else None)
        return assemble(workspace.character(), workspace, model, retrieval=retrieval)

    return Context(workspace, models, pool, agents)


def run(steps: Sequence[Step], workspace: Workspace, models: Models,
        on_step: Callable[[Step, int, int], None] | None = None) -> list[StepRun]:
    """Run steps from synchronous code (the CLI, `run_build`, tests); the libraries' log lines and
    warnings go to the workspace's `logs/rolecraft.log` (see `rolecraft.quiet`)."""
    ctx = context(workspace, models)

    async def go() -> list[StepRun]:
        try:
            return await run_steps(steps, ctx, on_step)
        finally:
            await ctx.pool.aclose()

    with log_to(workspace.path("logs/rolecraft.log")):
        return run_sync(go())
