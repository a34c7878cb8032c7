"""The OpenAI-compatible server: each character is a model id; the web chat page is served at `/`.

Chat requests go through the character's Agent (persona, retrieval, trimming, its speech without a
"Name:" prefix, its thoughts as `reasoning_content`); the client's own system messages are kept after
the persona. `/v1/completions` continues a raw prompt as it is (a front end in text-completion mode
built the whole prompt itself), on the character's model and adapter. `n` choices are sampled with
seeds seed, seed+1, ...; `/tokenize` and `/detokenize` answer in vLLM's shape on the character's
tokenizer. The contract is described at /openapi.json. Bad input is answered with an OpenAI-style
error body and the right status, never a 500. Nothing here depends on which backend generates.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from rolecraft.agent import Agent
from rolecraft.errors import RolecraftError
from rolecraft.llm.base import Completion, ConversationError, SamplingParams, TokenCodec
from rolecraft.serve.openapi import openapi_document
from rolecraft.serve.protocol import (
    APIError,
    ChatRequest,
    CompletionRequest,
    DetokenizeRequest,
    TokenizeRequest,
    parse_body,
)
from rolecraft.serve.responses import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    Detokenized,
    Extras,
    Health,
    ModelCard,
    ModelList,
    TextChoice,
    TextCompletion,
    Tokens,
    Usage,
    chat_events,
    chat_logprobs,
    text_events,
    text_logprobs,
)

log = logging.getLogger("rolecraft.serve")
STATIC = Path(__file__).parent / "static"


@dataclass
class ServeSettings:
    api_key: str | None = None  # when set, /v1/* needs `Authorization: Bearer <key>`
    max_body_bytes: int = 1 << 20
    max_pending: int = 64  # requests generating or waiting for the model; more get 503
    default_max_tokens: int = 512
    max_tokens_cap: int = 4096
    cors_origins: list[str] = field(default_factory=list)


class Admission:
    """Counts requests in the server; beyond the limit new ones are turned away with 503."""

    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0

    def check(self) -> None:
        if self.active >= self.limit:
            raise APIError(503, f"the server is busy ({self.active} requests in progress); retry shortly",
                           headers={"Retry-After": "1"})

    @contextmanager
    def hold(self) -> Iterator[None]:
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


def create_app(agents: dict[str, Agent], settings: ServeSettings | None = None, trained: Collection[str] = ()) -> FastAPI:
    """The server for `agents` (model id → Agent); `trained` ids are reported as having an adapter."""
    settings = settings or ServeSettings()
    app = FastAPI(title="rolecraft", docs_url=None, redoc_url=None, openapi_url=None)
    admission = Admission(settings.max_pending)
    started = int(time.time())
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        origins = settings.cors_origins
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"], allow_headers=["*"])

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> Response:
        return JSONResponse(err.body(), err.status, headers=err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Response:  # 404, 405 (with Allow)
        return await api_error(request, APIError(err.status_code, str(err.detail), headers=err.headers))

    @app.exception_handler(ConversationError)
    async def rejected_conversation(request: Request, err: ConversationError) -> Response:
        return await api_error(request, APIError(422, str(err), param="messages"))

    @app.exception_handler(RolecraftError)
    async def backend_error(request: Request, err: RolecraftError) -> Response:
        log.warning("generation failed: %s", err)  # e.g. the upstream server is down: not the client's fault
        return await api_error(request, APIError(502, str(err)))

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception) -> Response:
        log.exception("internal error on %s", request.url.path)
        return await api_error(request, APIError(500, f"internal error ({type(err).__name__})"))

    def authorized(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {settings.api_key}".encode()):
            raise APIError(401, "missing or wrong API key: send `Authorization: Bearer <key>`", code="invalid_api_key")

    async def body(request: Request) -> bytes:
        limit = settings.max_body_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise APIError(413, f"the request body is {int(length)} bytes; the limit is {limit}")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise APIError(413, f"the request body is over the limit of {limit} bytes")
        return bytes(data)

    def agent_for(model_id: str | None) -> Agent:
        if model_id is None:  # /tokenize without a model: the first one, as vLLM's default model
            return next(iter(agents.values()))
        if model_id not in agents:
            raise APIError(404, f"no model '{model_id}' here; GET /v1/models lists the characters served",
                           param="model", code="model_not_found")
        return agents[model_id]

    def codec(agent: Agent) -> TokenCodec | None:
        try:
            return agent.model.codec()
        except RolecraftError:
            return None

    def sampling(req: ChatRequest | CompletionRequest, agent: Agent) -> list[SamplingParams]:
        """One SamplingParams per choice: seeds seed, seed+1, ... so choice i is what seed+i gives alone."""
        params = req.sampling(settings.default_max_tokens, settings.max_tokens_cap, secrets.randbits(31))
        vocab = codec(agent)
        if vocab is not None and any(t >= vocab.vocab_size for t in params.logit_bias):
            raise APIError(422, f"logit_bias: token ids go up to {vocab.vocab_size - 1} for this model",
                           param="logit_bias", code="token_out_of_range")
        return [params.model_copy(update={"seed": params.seed + i}) for i in range(req.n)]

    def card(model_id: str) -> ModelCard:
        agent = agents[model_id]
        c = agent.character
        return ModelCard(id=model_id, created=started, name=c.full_name, description=c.expand(c.description, agent.user)[:500],
                         greeting=agent.greeting(), adapter=model_id in trained)  # fmt: skip

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(document)

    @app.get("/health")
    async def health() -> JSONResponse:
        return answer(Health(models=len(agents), active=admission.active))

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def models() -> JSONResponse:
        return answer(ModelList(data=[card(i) for i in agents]))

    @app.get("/v1/models/{model_id:path}", dependencies=[Depends(authorized)])
    async def model(model_id: str) -> JSONResponse:
        agent_for(model_id)
        return answer(card(model_id))

    @app.post("/v1/chat/completions", dependencies=[Depends(authorized)])
    async def chat(request: Request) -> Response:
        req: ChatRequest = parse_body(await body(request), ChatRequest)
        agent = agent_for(req.model)
        choices = sampling(req, agent)
        history = [m.as_message() for m in req.messages]
        admission.check()
        head = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": req.model}
        if req.stream:
            streams = [partial(agent.stream, history, params) for params in choices]
            return _sse(chat_events(streams, head, req.include_usage), admission)
        with admission.hold():
            replies = await asyncio.gather(*(agent.respond(history, params) for params in choices))
        done = [reply.completion or Completion(text=reply.text) for reply in replies]
        first = replies[0]
        return answer(ChatCompletion(
            **head,
            choices=[ChatChoice(index=i, message=AssistantMessage(content=r.text, reasoning_content="\n\n".join(r.thoughts) or None),
                                logprobs=chat_logprobs(c.logprobs), finish_reason=c.finish_reason)
                     for i, (r, c) in enumerate(zip(replies, done))],
            usage=Usage.of(done),
            rolecraft=Extras(facts=first.facts, thoughts=first.thoughts) if first.facts or first.thoughts else None,
        ))  # fmt: skip

    @app.post("/v1/completions", dependencies=[Depends(authorized)])
    async def completions(request: Request) -> Response:
        req: CompletionRequest = parse_body(await body(request), CompletionRequest)
        agent = agent_for(req.model)
        choices = sampling(req, agent)
        # A raw prompt longer than the character's window keeps its end, as the chat history would.
        prompts = [p[-agent.context_chars :] for p in req.prompts]
        admission.check()
        head = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": req.model}
        if req.stream:  # choice index: prompt * n + i, as vLLM numbers them
            streams = [partial(agent.model.stream_complete, prompt, params) for prompt in prompts for params in choices]
            return _sse(text_events(streams, head, req.include_usage), admission)
        with admission.hold():
            per_seed = await asyncio.gather(*(agent.model.complete(prompts, params) for params in choices))
        done = [per_seed[i][p] for p in range(len(prompts)) for i in range(len(choices))]
        return answer(TextCompletion(
            **head,
            choices=[TextChoice(index=i, text=c.text, logprobs=text_logprobs(c.logprobs), finish_reason=c.finish_reason)
                     for i, c in enumerate(done)],
            usage=Usage.of(done),
        ))  # fmt: skip

    async def tokenize(request: Request) -> Response:
        req: TokenizeRequest = parse_body(await body(request), TokenizeRequest)
        agent = agent_for(req.model)
        vocab = codec(agent)
        if vocab is None:
            raise APIError(501, f"'{req.model}' is generated on another server; ask it to count tokens", code="not_implemented")
        if req.messages is not None:
            text = vocab.render([m.as_message() for m in req.messages])
            special = bool(req.add_special_tokens)  # the chat template already holds BOS
        else:
            text, special = req.prompt or "", req.add_special_tokens is not False
        ids = await asyncio.to_thread(vocab.encode, text, special)
        strs = [vocab.decode([i]) for i in ids] if req.return_token_strs else None
        return answer(Tokens(count=len(ids), max_model_len=vocab.context_length, tokens=ids, token_strs=strs))

    async def detokenize(request: Request) -> Response:
        req: DetokenizeRequest = parse_body(await body(request), DetokenizeRequest)
        vocab = codec(agent_for(req.model))
        if vocab is None:
            raise APIError(501, f"'{req.model}' is generated on another server; ask it to decode tokens", code="not_implemented")
        if any(t >= vocab.vocab_size for t in req.tokens):
            raise APIError(422, f"tokens: ids go up to {vocab.vocab_size - 1} for this model", param="tokens",
                           code="token_out_of_range")
        return answer(Detokenized(prompt=await asyncio.to_thread(vocab.decode, req.tokens)))

    for prefix in ("", "/v1"):  # vLLM serves them at the root; the /v1 aliases suit clients given a /v1 base
        app.add_api_route(f"{prefix}/tokenize", tokenize, methods=["POST"], dependencies=[Depends(authorized)])
        app.add_api_route(f"{prefix}/detokenize", detokenize, methods=["POST"], dependencies=[Depends(authorized)])

    sizes = {c.vocab_size if (c := codec(a)) else None for a in agents.values()}
    vocab_size = next(iter(sizes)) if len(sizes) == 1 else None
    document = openapi_document(app.routes, list(agents), vocab_size, secured=settings.api_key is not None)
    return app


def answer(body: BaseModel) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"))


def _sse(events: AsyncIterator[dict[str, Any]], admission: Admission) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        with admission.hold():
            try:
                async for event in events:
                    yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
            except RolecraftError as e:  # the status line is gone already: report in the stream
                log.warning("generation failed mid-stream: %s", e)
                status = 422 if isinstance(e, ConversationError) else 502
                yield f"data: {json.dumps(APIError(status, str(e)).body())}\n\n"
            except Exception as e:
                log.exception("internal error while streaming")
                yield f"data: {json.dumps(APIError(500, f'internal error ({type(e).__name__})').body())}\n\n"
            yield "data: [DONE]\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
