"""A persistent request cache in front of any ChatModel: the reason killed runs resume for free.

Key = hash of (backend identity, request kind, messages or prompt, sampling params incl. seed,
schema). Requests are cut into batches of the backend's `batch_size` by their position in the
caller's list, so a resumed run forms the same batches as an uninterrupted one and, with the same
seed, gets the same outputs. Each finished batch is committed in one SQLite transaction before the
next result is returned; `kill -9` loses at most the batches in flight. API keys are not part of a
backend's identity and so never reach the cache file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rolecraft.llm.base import ChatModel, Completion, Conversation, SamplingParams, as_messages


@dataclass
class Usage:
    calls: int = 0  # requests sent to the backend
    cached: int = 0  # requests answered from the cache
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, completion: Completion) -> None:
        if completion.cached:
            self.cached += 1
            return
        self.calls += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class RequestCache:
    """SQLite table of request key → completion JSON. WAL mode, one transaction per batch."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, completion TEXT)")
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> dict[str, Completion]:
        found: dict[str, Completion] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                for key, raw in self._db.execute(
                    f"SELECT key, completion FROM calls WHERE key IN ({marks})", chunk
                ):
                    found[key] = Completion.model_validate_json(raw).model_copy(update={"cached": True})
        return found

    def put_many(self, items: Sequence[tuple[str, Completion]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO calls VALUES (?, ?)",
                [(k, c.model_copy(update={"cached": False}).model_dump_json()) for k, c in items],
            )
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        self._db.close()


def request_key(identity: dict[str, Any], kind: str, payload: Any, params: SamplingParams, schema: Any) -> str:
    blob = json.dumps(
        {"model": identity, "kind": kind, "input": payload, "params": params.cache_key(), "schema": schema},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


Progress = Callable[[int], None]  # called with the number of requests just finished


class CachedModel(ChatModel):
    """Wraps a backend with the request cache and usage counts. `progress`, when a caller passes one,
    is told how many requests finished, as each batch finishes (cache hits at once)."""

    def __init__(self, inner: ChatModel, cache: RequestCache, usage: Usage | None = None):
        super().__init__(inner.name)
        self.inner = inner
        self.provider = inner.provider
        self.batch_size = inner.batch_size
        self.cache = cache
        self.usage = usage or Usage()

    @property
    def spec(self) -> str:
        return self.inner.spec

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    async def generate(
        self,
        conversations: Sequence[Conversation],
        params: SamplingParams,
        schema: dict[str, Any] | None = None,
        *,
        progress: Progress | None = None,
    ) -> list[Completion]:
        convs = [as_messages(c) for c in conversations]
        payloads = [[m.model_dump() for m in c] for c in convs]
        call = lambda idx: self.inner.generate([convs[i] for i in idx], params, schema)  # noqa: E731
        return await self._run("chat", payloads, params, schema, call, progress)

    async def complete(
        self, prompts: Sequence[str], params: SamplingParams, *, progress: Progress | None = None
    ) -> list[Completion]:
        call = lambda idx: self.inner.complete([prompts[i] for i in idx], params)  # noqa: E731
        return await self._run("text", list(prompts), params, None, call, progress)

    async def _run(self, kind, payloads, params, schema, call, progress: Progress | None) -> list[Completion]:
        identity = self.inner.identity()
        keys = [request_key(identity, kind, p, params, schema) for p in payloads]
        results: list[Completion | None] = [None] * len(keys)
        hits = self.cache.get_many(keys)
        for i, key in enumerate(keys):
            if key in hits:
                results[i] = hits[key]
                self.usage.add(hits[key])
        if hits and progress:
            progress(sum(r is not None for r in results))

        async def run_batch(idx: list[int]) -> None:
            done = await call(idx)
            if len(done) != len(idx):
                raise RuntimeError(f"{self.inner!r} returned {len(done)} completions for {len(idx)} requests")
            self.cache.put_many([(keys[i], c) for i, c in zip(idx, done)])
            for i, c in zip(idx, done):
                results[i] = c
                self.usage.add(c)
            if progress:
                progress(len(idx))

        # Identical requests are asked once (they share a key, so they must share the answer).
        first = {key: i for i, key in reversed(list(enumerate(keys)))}
        # Batches are cut by position in the full list, so they do not depend on what was cached.
        size = max(1, self.batch_size)
        batches = [
            idx
            for start in range(0, len(keys), size)
            if (idx := [i for i in range(start, min(start + size, len(keys))) if results[i] is None and first[keys[i]] == i])
        ]
        await asyncio.gather(*(run_batch(b) for b in batches))
        repeated = 0
        for i, key in enumerate(keys):
            if results[i] is None:
                results[i] = results[first[key]].model_copy(update={"cached": True})
                self.usage.add(results[i])
                repeated += 1
        if repeated and progress:
            progress(repeated)
        return [r for r in results if r is not None]

    async def aclose(self) -> None:
        await self.inner.aclose()
