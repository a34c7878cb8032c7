"""A small OpenAI-compatible upstream that streams, standing in for vLLM behind `rolecraft serve
--backend openai:...` in tests and in bench/serve_overhead.py.

Answers are words echoed from the request (deterministic, so a test can tell which request produced
which answer), sent as one SSE event per word when `stream` is set, with made-up log-probabilities
(one token per word) when a whole answer is asked for with `logprobs`. `latency` is added before the
first token and `token_delay` between tokens. Every request body is recorded in `log`.

Standalone: `python -m tests.streaming_upstream --port 8001 --latency 0.02 --token-delay 0.01`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from rolecraft.serve import BackgroundServer


class Upstream:
    def __init__(self, latency: float = 0.0, token_delay: float = 0.0, models: tuple[str, ...] = ("base",)):
        self.latency = latency
        self.token_delay = token_delay
        self.models = models
        self.log: list[dict[str, Any]] = []
        self.app = self._build()

    def words(self, body: dict[str, Any]) -> list[str]:
        source = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        out = ["echo", *str(source).split()][: body.get("max_tokens") or 16]
        return [w if i == 0 else f" {w}" for i, w in enumerate(out)]

    def _build(self) -> FastAPI:
        app = FastAPI()

        async def answer(request: Request, chat: bool) -> Response:
            body = await request.json()
            self.log.append(body)
            await asyncio.sleep(self.latency)
            words = self.words(body)
            kind = "chat.completion" if chat else "text_completion"
            usage = {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)}
            head = {"id": "up-1", "created": int(time.time()), "model": body["model"]}
            finish = "length" if len(words) == body.get("max_tokens") else "stop"
            if not body.get("stream"):
                text = "".join(words)
                choice = {"index": 0, "finish_reason": finish, "logprobs": _logprobs(words, body, chat)}
                choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
                return JSONResponse({**head, "object": kind, "choices": [choice], "usage": usage})

            async def events():
                for i, word in enumerate(words):
                    if i and self.token_delay:
                        await asyncio.sleep(self.token_delay)
                    piece = {"delta": {"content": word}} if chat else {"text": word}
                    yield _sse({**head, "object": kind + ".chunk" * chat, "choices": [{"index": 0, **piece, "finish_reason": None}]})
                last = {"delta": {}} if chat else {"text": ""}
                yield _sse({**head, "object": kind + ".chunk" * chat, "choices": [{"index": 0, **last, "finish_reason": finish}]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    yield _sse({**head, "object": kind + ".chunk" * chat, "choices": [], "usage": usage})
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            return await answer(request, chat=True)

        @app.post("/v1/completions")
        async def completions(request: Request) -> Response:
            return await answer(request, chat=False)

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "upstream"} for m in self.models]}

        return app

    def serve(self) -> BackgroundServer:
        return BackgroundServer(self.app)


def _logprobs(words: list[str], body: dict[str, Any], chat: bool) -> dict[str, Any] | None:
    """Made-up log-probabilities in OpenAI's shapes, one token per word, when the request asks."""
    if not body.get("logprobs"):
        return None
    if chat:
        return {"content": [{"token": w, "logprob": -0.5, "bytes": list(w.encode()), "top_logprobs": []} for w in words]}
    return {"tokens": words, "token_logprobs": [-0.5] * len(words), "top_logprobs": [{w: -0.5} for w in words],
            "text_offset": [sum(len(x) for x in words[:i]) for i in range(len(words))]}  # fmt: skip


def _sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event)}\n\n"


def main() -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--token-delay", type=float, default=0.0)
    args = parser.parse_args()
    upstream = Upstream(latency=args.latency, token_delay=args.token_delay)
    uvicorn.run(upstream.app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
