"""The bodies the server answers with. Every JSON answer is built through these models, and the OpenAPI
description (serve.openapi) is generated from them, so the two cannot differ. Streamed events follow
OpenAI's chunk shapes: `chat.completion.chunk` (thoughts as `reasoning_content` deltas, apart from
`content`) and `text_completion`; with n > 1 the choices stream one after the other, by `index`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from rolecraft.llm.base import Completion, TokenLogprob

LOGPROB_FLOOR = -9999.0  # JSON has no -Infinity; vLLM reports the same floor
Finish = Literal["stop", "length"]
Stream = Callable[[], AsyncIterator[Completion]]  # opens one choice's stream


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "rolecraft"
    name: str  # the character's full name
    description: str
    greeting: str
    adapter: bool  # a trained adapter plays it (else the base model with its persona prompt)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    models: int
    active: int  # requests generating or waiting


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, done: Sequence[Completion]) -> Usage:
        prompt, completion = sum(c.prompt_tokens for c in done), sum(c.completion_tokens for c in done)
        return cls(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


class TopLogprobOut(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprobOut(TopLogprobOut):
    top_logprobs: list[TopLogprobOut]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprobOut]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    reasoning_content: str | None = None  # the character's thoughts, when it had any


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: Finish


class Extras(BaseModel):
    facts: list[str]  # retrieved persona facts that were in the prompt
    thoughts: list[str]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    rolecraft: Extras | None = None  # OpenAI clients ignore it; the first choice's facts and thoughts


class TextLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class TextChoice(BaseModel):
    index: int
    text: str
    logprobs: TextLogprobs | None = None
    finish_reason: Finish


class TextCompletion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage


class Tokens(BaseModel):
    count: int
    max_model_len: int | None
    tokens: list[int]
    token_strs: list[str] | None = None


class Detokenized(BaseModel):
    prompt: str


def _logprob(value: float) -> float:
    return max(value, LOGPROB_FLOOR)


def chat_logprobs(entries: Sequence[TokenLogprob] | None) -> ChatLogprobs | None:
    if entries is None:
        return None

    def top(token: str, logprob: float) -> TopLogprobOut:
        return TopLogprobOut(token=token, logprob=_logprob(logprob), bytes=list(token.encode()))

    return ChatLogprobs(content=[
        TokenLogprobOut(**top(e.token, e.logprob).model_dump(), top_logprobs=[top(t.token, t.logprob) for t in e.top_logprobs])
        for e in entries
    ])  # fmt: skip


def text_logprobs(entries: Sequence[TokenLogprob] | None, offset: int = 0) -> TextLogprobs | None:
    """OpenAI's legacy shape; `offset` is where these tokens start in the choice's text."""
    if entries is None:
        return None
    offsets = []
    for e in entries:
        offsets.append(offset)
        offset += len(e.token)
    return TextLogprobs(
        tokens=[e.token for e in entries],
        token_logprobs=[_logprob(e.logprob) for e in entries],
        top_logprobs=[{t.token: _logprob(t.logprob) for t in e.top_logprobs} for e in entries],
        text_offset=offsets,
    )


async def chat_events(streams: Sequence[Stream], head: dict[str, Any], include_usage: bool) -> AsyncIterator[dict[str, Any]]:
    head = {**head, "object": "chat.completion.chunk"}

    def event(index: int, delta: dict[str, Any], logprobs: ChatLogprobs | None = None, finish: str | None = None):
        logs = logprobs.model_dump() if logprobs else None
        return {**head, "choices": [{"index": index, "delta": delta, "logprobs": logs, "finish_reason": finish}]}

    done = []
    for index, open_stream in enumerate(streams):
        yield event(index, {"role": "assistant", "content": ""})
        last = Completion(text="")
        async for piece in open_stream():
            if piece.reasoning:
                yield event(index, {"reasoning_content": piece.reasoning})
            if piece.text or piece.logprobs:
                yield event(index, {"content": piece.text}, chat_logprobs(piece.logprobs))
            last = piece
        yield event(index, {}, finish=last.finish_reason)
        done.append(last)
    if include_usage:
        yield {**head, "choices": [], "usage": Usage.of(done).model_dump()}


async def text_events(streams: Sequence[Stream], head: dict[str, Any], include_usage: bool) -> AsyncIterator[dict[str, Any]]:
    head = {**head, "object": "text_completion"}

    def event(index: int, text: str, logprobs: TextLogprobs | None = None, finish: str | None = None):
        logs = logprobs.model_dump() if logprobs else None
        return {**head, "choices": [{"index": index, "text": text, "logprobs": logs, "finish_reason": finish}]}

    done = []
    for index, open_stream in enumerate(streams):
        offset, last = 0, Completion(text="")
        async for piece in open_stream():
            if piece.text or piece.logprobs:
                yield event(index, piece.text, text_logprobs(piece.logprobs, offset))
                offset += len(piece.text)
            last = piece
        yield event(index, "", finish=last.finish_reason)
        done.append(last)
    if include_usage:
        yield {**head, "choices": [], "usage": Usage.of(done).model_dump()}
