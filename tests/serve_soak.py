"""A bounded soak of the server on loopback: many clients stream chat replies at once for a while, some
hanging up mid-stream, and what the server holds is measured before and after.

The server runs in this process's event loop (uvicorn's `serve()` as a task), so its asyncio tasks can
be counted; memory is this process's resident size after trimming the heap. Used by
tests/test_serve_soak.py (seconds, tiny model) and bench/soak_serve.py (minutes, embedded model).
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

from rolecraft.memory import trim_heap
from rolecraft.serve import free_port

QUESTIONS = ["Who are you?", "Where are we flying today?", "What do you think of the storm?", "Tell me about the ship."]


@dataclass
class SoakResult:
    clients: int
    seconds: float
    streams: int = 0  # requests started
    completed: int = 0  # streams read to [DONE]
    disconnected: int = 0  # streams the client hung up on after the first piece
    errors: list[str] = field(default_factory=list)  # non-200 answers, error events, broken streams
    pieces: int = 0
    first_piece_s: list[float] = field(default_factory=list)
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    tasks_before: int = 0
    tasks_after: int = 0
    threads_before: int = 0
    threads_after: int = 0
    answers_afterwards: bool = False

    def summary(self) -> dict[str, Any]:
        waits = sorted(self.first_piece_s) or [0.0]
        return {
            "clients": self.clients, "seconds": round(self.seconds, 1), "streams": self.streams,
            "completed": self.completed, "disconnected": self.disconnected, "errors": len(self.errors),
            "pieces": self.pieces, "first_piece_p50_s": round(waits[len(waits) // 2], 2),
            "first_piece_p95_s": round(waits[int(len(waits) * 0.95)], 2),
            "rss_before_mb": round(self.rss_before_mb, 1), "rss_after_mb": round(self.rss_after_mb, 1),
            "tasks_before": self.tasks_before, "tasks_after": self.tasks_after,
            "threads_before": self.threads_before, "threads_after": self.threads_after,
            "answers_afterwards": self.answers_afterwards,
        }  # fmt: skip


def _measure() -> tuple[float, int, int]:
    gc.collect()
    trim_heap()
    tasks = len([t for t in asyncio.all_tasks() if not t.done()])
    return psutil.Process().memory_info().rss / 2**20, tasks, threading.active_count()


async def soak(app: Any, model: str, clients: int = 50, seconds: float = 180.0, hang_up_every: int = 4,
               max_tokens: tuple[int, int] = (8, 32), seed: int = 0) -> SoakResult:  # fmt: skip
    """`clients` streaming clients for `seconds`; every `hang_up_every`-th stream is dropped after its
    first piece of text."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    result = SoakResult(clients=clients, seconds=seconds)
    ask = {"model": model, "messages": [{"role": "user", "content": QUESTIONS[0]}], "max_tokens": 4, "stream": True}
    async with httpx.AsyncClient(timeout=60) as warm:  # loads the model; its connection is closed after
        await warm.post(url + "/v1/chat/completions", json=ask)
    await asyncio.sleep(0.5)
    result.rss_before_mb, result.tasks_before, result.threads_before = _measure()
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)

    async def client(http: httpx.AsyncClient, index: int) -> None:
        while time.monotonic() < deadline:
            result.streams += 1
            hang_up = result.streams % hang_up_every == 0
            body = {"model": model, "stream": True, "seed": rng.randrange(1 << 30), "temperature": 1.0,
                    "max_tokens": rng.randint(*max_tokens),
                    "messages": [{"role": "user", "content": rng.choice(QUESTIONS)}]}  # fmt: skip
            started = time.monotonic()
            try:
                async with http.stream("POST", url + "/v1/chat/completions", json=body) as response:
                    if response.status_code != 200:
                        result.errors.append(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
                        continue
                    first = True
                    async for line in response.aiter_lines():
                        if not line.startswith("data: "):
                            continue
                        if line == "data: [DONE]":
                            result.completed += 1
                            break
                        event = json.loads(line[6:])
                        if "error" in event:
                            result.errors.append(f"in stream: {event['error']['message'][:200]}")
                        elif any(c["delta"].get("content") for c in event["choices"]):
                            result.pieces += 1
                            if first:
                                result.first_piece_s.append(time.monotonic() - started)
                                first = False
                            if hang_up:  # leaving the block closes the connection mid-stream
                                result.disconnected += 1
                                break
            except httpx.HTTPError as e:
                result.errors.append(f"{type(e).__name__}: {e}"[:200])

    async with httpx.AsyncClient(timeout=seconds + 600, limits=limits) as http:  # queued behind the model
        await asyncio.gather(*(client(http, i) for i in range(clients)))
    async with httpx.AsyncClient(timeout=60) as check:
        for _ in range(600):  # abandoned generations end at their next token
            if (await check.get(url + "/health")).json()["active"] == 0:
                break
            await asyncio.sleep(0.1)
        last = await check.post(url + "/v1/chat/completions", json={**ask, "stream": False})
        result.answers_afterwards = last.status_code == 200
    await asyncio.sleep(0.5)  # the server ends its closed connections' tasks
    result.rss_after_mb, result.tasks_after, result.threads_after = _measure()
    server.should_exit = True
    await serving
    return result
