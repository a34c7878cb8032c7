"""Many callers, one batch: generate calls that arrive in the same event-loop turn are merged.

An evaluation asks every agent the same round of questions as concurrent coroutines; without this
each conversation would be decoded alone. `Batched` collects the calls of one turn that share
sampling settings and schema, asks its inner model once, and hands each caller its own answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from rolecraft.llm.base import ChatModel, Completion, Conversation, SamplingParams
from rolecraft.llm.cache import CachedModel, Progress, Usage


class Batched(ChatModel):
    """Merges generate calls that arrive in the same event-loop turn into one call on `inner`."""

    def __init__(self, inner: CachedModel):
        super().__init__(inner.name)
        self.inner = inner
        self.provider = inner.provider
        self.batch_size = inner.batch_size
        self._waiting: dict[str, list[tuple[Any, asyncio.Future, Progress | None]]] = {}
        self._flushes: set[asyncio.Task] = set()  # held so pending flushes are not garbage-collected

    @property
    def spec(self) -> str:
        return self.inner.spec

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    async def generate(self, conversations: Sequence[Conversation], params: SamplingParams,
                       schema: dict[str, Any] | None = None, *, progress: Progress | None = None) -> list[Completion]:
        return await self._join("chat", list(conversations), params, schema, progress)

    async def complete(self, prompts: Sequence[str], params: SamplingParams, *,
                       progress: Progress | None = None) -> list[Completion]:
        return await self._join("text", list(prompts), params, None, progress)

    async def _join(self, kind: str, inputs: list[Any], params: SamplingParams, schema: Any,
                    progress: Progress | None) -> list[Completion]:
        loop = asyncio.get_running_loop()
        key = json.dumps([kind, params.model_dump(), schema], sort_keys=True)
        futures = [loop.create_future() for _ in inputs]
        if key not in self._waiting:
            self._waiting[key] = []
            loop.call_soon(self._start_flush, key, kind, params, schema)
        self._waiting[key] += [(item, future, progress) for item, future in zip(inputs, futures)]
        return list(await asyncio.gather(*futures))

    def _start_flush(self, key: str, kind: str, params: SamplingParams, schema: Any) -> None:
        task = asyncio.ensure_future(self._flush(key, kind, params, schema))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, key: str, kind: str, params: SamplingParams, schema: Any) -> None:
        await asyncio.sleep(0)  # every task started in this turn has now queued its request
        group = self._waiting.pop(key)
        # Identical requests are asked once: with the same seed they must get the same answer, and the
        # cache can hold only one answer per request anyway.
        payloads = [json.dumps(_plain(item), sort_keys=True) for item, _, _ in group]
        unique = {p: item for p, (item, _, _) in zip(payloads, group)}
        # One caller's progress (or several callers sharing one display) follows the batches as they
        # finish; callers with displays of their own are advanced when their answers arrive.
        hooks = {id(h): h for _, _, h in group if h is not None}
        shared = next(iter(hooks.values())) if len(hooks) == 1 and all(h is not None for _, _, h in group) else None
        try:
            if kind == "chat":
                done = await self.inner.generate(list(unique.values()), params, schema, progress=shared)
            else:
                done = await self.inner.complete(list(unique.values()), params, progress=shared)
        except Exception as e:  # every waiting caller sees the failure
            for _, future, _ in group:
                if not future.done():
                    future.set_exception(e)
            return
        answers = dict(zip(unique, done))
        if shared is not None and len(group) > len(unique):
            shared(len(group) - len(unique))  # the repeated requests, answered without a call
        seen: set[str] = set()
        for p, (_, future, hook) in zip(payloads, group):
            answer = answers[p] if p not in seen else answers[p].model_copy(update={"cached": True})
            seen.add(p)
            if hook is not None and shared is None:
                hook(1)
            if not future.done():
                future.set_result(answer)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _plain(item: Any) -> Any:
    """A request as JSON-able data (a conversation of Messages or dicts, or a raw prompt)."""
    if isinstance(item, str):
        return item
    return [m.model_dump() if isinstance(m, BaseModel) else dict(m) for m in item]
