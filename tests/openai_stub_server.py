"""A small but real OpenAI-compatible server for the `openai:` backend's tests and benchmark.

Answers are deterministic functions of the request (an echo of the last message plus a digest of
messages, seed and sampling settings), so a test can tell which request produced which answer and a
resumed run must reproduce an uninterrupted one. It honours `max_tokens` (one token = one word),
`stop`, and `response_format` json_schema (a valid instance for simple schemas). It can add latency,
cap concurrency (reject with 429 or queue), require an API key and inject faults in arrival order:
"429", "500", "drop" (headers sent, then the connection is cut) and "hang" (no answer for a while).

In tests: `with StubServer(latency=0.05) as server: ... server.url ... server.state.log`.
Standalone: `python -m tests.openai_stub_server --port 8000 --latency 0.05 --max-concurrency 16`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

Fault = Literal["429", "500", "drop", "hang"]


class StubConfig(BaseModel):
    latency: float = 0.0  # seconds each answered request takes
    max_concurrency: int | None = None  # requests served at once; None = unlimited
    over_cap: Literal["reject", "queue"] = "reject"  # what happens to a request over the cap
    faults: list[Fault] = []  # consumed one per request, in arrival order
    retry_after_ms: int | None = None  # sent with every 429/500 when set (clients then wait that long)
    hang_seconds: float = 5.0
    api_key: str | None = None  # when set, other keys get 401
    usage: bool = True  # include token usage in answers
    fill: str | None = None  # text for JSON string fields (a scripted teacher's sentence)


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    body: dict[str, Any]
    status: int
    arrived: float


@dataclass
class StubState:
    config: StubConfig
    faults: list[Fault] = field(default_factory=list)
    log: list[Seen] = field(default_factory=list)
    in_flight: int = 0  # requests inside the server, admitted or not
    peak_in_flight: int = 0
    serving: int = 0  # requests admitted under the cap
    # The server measuring itself (since the last DELETE /stats): answers given, seconds their slots
    # were held (latency plus making the answer), the most held at once, and this process's CPU time
    # (the server's own when it runs as its own process, as `spawn` starts it).
    served: int = 0
    peak_serving: int = 0
    busy_seconds: float = 0.0
    cpu_mark: float = field(default_factory=time.process_time)

    def __post_init__(self) -> None:
        self.faults = list(self.config.faults)
        self.slots = asyncio.Semaphore(self.config.max_concurrency or 1 << 30)

    def statuses(self) -> list[int]:
        return [s.status for s in self.log]


class _Dropped(Exception):
    """Raised after the response headers went out, which makes uvicorn cut the connection."""


def words(text: str) -> list[str]:
    return text.split()


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:8]


def example_for(schema: dict[str, Any], root: dict[str, Any], text: str) -> Any:
    """A valid instance of a simple JSON schema (objects, arrays, scalars, enums, $ref, anyOf), within
    its length, item and number bounds; enum choices and string offsets vary with `text`."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return example_for(root.get("$defs", root.get("definitions", {}))[name], root, text)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][int(_digest(text), 16) % len(schema["enum"])]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return example_for(schema[key][0], root, text)
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_for(sub, root, f"{text} {name}") for name, sub in props.items()}
    if kind == "array":
        count = min(max(1, schema.get("minItems", 1), min(3, schema.get("maxItems", 3))), schema.get("maxItems", 3))
        return [example_for(schema.get("items", {"type": "string"}), root, f"{text} {i}") for i in range(count)]
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 400)
        return (text * (1 + low // max(1, len(text))))[:high] or "x" * max(1, low)
    if kind in ("integer", "number"):
        low, high = schema.get("minimum", 0), schema.get("maximum", 100)
        return low + int(_digest(text), 16) % (int(high - low) + 1)
    return {"boolean": True, "null": None}[kind]


def answer(body: dict[str, Any], prompt_text: str, history: Any, fill: str | None = None) -> tuple[str, str, int]:
    """(text, finish_reason, prompt_tokens) for a request; `history` is everything the model saw;
    `fill`, when given, is the text JSON string fields are made of (e.g. a sentence naming a character)."""
    sampled = body.get("temperature", 1.0) != 0
    tag = _digest(history, body.get("seed") if sampled else None, body.get("temperature"), body.get("top_p"))
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"].get("schema", {})
        seed_text = f"{fill} ({tag})" if fill else " ".join(words(prompt_text)[:4]) or tag
        text = json.dumps(example_for(schema, schema, seed_text))
        return text, "stop", len(words(json.dumps(history)))
    out = ["echo:", *words(prompt_text), tag]
    finish = "stop"
    limit = body.get("max_tokens")
    if limit is not None and len(out) > limit:
        out, finish = out[:limit], "length"
    text = " ".join(out)
    stops = body.get("stop") or []
    for stop in [stops] if isinstance(stops, str) else stops:
        if stop in text:
            text, finish = text[: text.index(stop)], "stop"
    return text, finish, len(words(json.dumps(history)))


def create_app(state: StubState) -> FastAPI:
    app = FastAPI(title="rolecraft OpenAI stub")

    def error(status: int, message: str) -> JSONResponse:
        headers = {}
        if state.config.retry_after_ms is not None and status in (429, 500):
            headers["retry-after-ms"] = str(state.config.retry_after_ms)
        return JSONResponse({"error": {"message": message, "type": "stub", "code": status}}, status, headers)

    async def serve(request: Request, make: Any) -> Response:
        body = await request.json()
        seen = Seen(request.url.path, body, 200, time.monotonic())
        state.log.append(seen)
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        try:
            response = await _respond(request, body, make)
        finally:
            state.in_flight -= 1
        seen.status = response.status_code
        return response

    async def _respond(request: Request, body: dict[str, Any], make: Any) -> Response:
        cfg = state.config
        if cfg.api_key is not None and request.headers.get("authorization") != f"Bearer {cfg.api_key}":
            return error(401, "invalid API key")
        fault = state.faults.pop(0) if state.faults else None
        if fault in ("429", "500"):
            return error(int(fault), f"injected {fault}")
        if fault == "hang":
            await asyncio.sleep(cfg.hang_seconds)
        if fault == "drop":
            async def cut() -> Any:
                raise _Dropped()
                yield b""  # makes this an async generator

            return StreamingResponse(cut(), status_code=599)
        if cfg.over_cap == "reject" and cfg.max_concurrency and state.serving >= cfg.max_concurrency:
            return error(429, "over the concurrency cap")
        async with state.slots:
            state.serving += 1
            state.peak_serving = max(state.peak_serving, state.serving)
            held = time.perf_counter()
            try:
                await asyncio.sleep(cfg.latency)
                payload = make(body)
            finally:
                state.serving -= 1
                state.served += 1
                state.busy_seconds += time.perf_counter() - held
        return JSONResponse(payload)

    def usage(prompt_tokens: int, text: str) -> dict[str, int] | None:
        if not state.config.usage:
            return None
        n = len(words(text))
        return {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}

    def chat(body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        text, finish, prompt_tokens = answer(body, messages[-1]["content"], messages, state.config.fill)
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        return {
            "id": f"chatcmpl-{len(state.log)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
            "usage": usage(prompt_tokens, text),
        }

    def text_completion(body: dict[str, Any]) -> dict[str, Any]:
        prompt = body["prompt"]
        text, finish, prompt_tokens = answer(body, prompt, prompt)
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        return {
            "id": f"cmpl-{len(state.log)}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
            "usage": usage(prompt_tokens, text),
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await serve(request, chat)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await serve(request, text_completion)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "stub", "object": "model", "owned_by": "rolecraft"}]}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        codes: dict[str, int] = {}
        for status in state.statuses():
            codes[str(status)] = codes.get(str(status), 0) + 1
        return {
            "requests": len(state.log),
            "statuses": codes,
            "peak_in_flight": state.peak_in_flight,
            "served": state.served,
            "peak_serving": state.peak_serving,
            "busy_seconds": state.busy_seconds,
            "cpu_seconds": time.process_time() - state.cpu_mark,
        }

    @app.delete("/stats")
    async def reset_stats() -> dict[str, Any]:
        state.log.clear()
        state.peak_in_flight = state.in_flight
        state.served, state.peak_serving, state.busy_seconds = 0, state.serving, 0.0
        state.cpu_mark = time.process_time()
        return {"ok": True}

    return app


def spawn(port: int, *options: str) -> subprocess.Popen:
    """Run the stub as its own process (as benchmarks do, so it does not share their event loop) and
    wait until it answers. `options` are this module's command-line flags."""
    command = [sys.executable, "-m", "tests.openai_stub_server", "--port", str(port), *options]
    server = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[1], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).raise_for_status()
            return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the stub server did not start")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StubServer:
    """Runs the stub with uvicorn in a background thread on a free loopback port."""

    def __init__(self, port: int | None = None, **config: Any):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.state = StubState(StubConfig(**config))
        self._server = uvicorn.Server(
            uvicorn.Config(create_app(self.state), host="127.0.0.1", port=self.port, log_level="critical")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> StubServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"stub server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--max-concurrency", type=int, default=None)
    parser.add_argument("--over-cap", choices=["reject", "queue"], default="reject")
    parser.add_argument("--retry-after-ms", type=int, default=None)
    args = parser.parse_args()
    config = StubConfig(
        latency=args.latency,
        max_concurrency=args.max_concurrency,
        over_cap=args.over_cap,
        retry_after_ms=args.retry_after_ms,
    )
    uvicorn.run(create_app(StubState(config)), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
