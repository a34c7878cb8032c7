"""`openai:NAME[@URL]`: any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, TGI, Ollama, ...).

Each conversation is one request; requests run concurrently under a per-model semaphore, a stream
of requests rather than waves (a slot that frees takes the next request at once). The
official async client retries 429, 5xx, dropped connections and timeouts with exponential backoff
and jitter, honouring the server's Retry-After. `batch_size` is 1 so the request cache commits each
answer as it arrives. The API key lives only in the client: not in `identity()` (the cache key),
not in `spec`, not in error messages.

`concurrency` (default `$ROLECRAFT_OPENAI_CONCURRENCY`, else 16) should be the server's batch
capacity, or a few more when the server queues what it cannot start (vLLM, llama.cpp, TGI do): each
answer then has the next request already waiting, so no server slot idles for the round trip
(bench/openai_throughput.py measures both).

Requests go out through the SDK's documented raw `client.post(path, body=...)` (same retries, auth and
error types) rather than its typed `create()`, which walks every message through a parameter
transformer: ~0.3 ms of CPU per message, 14.6 ms vs 1.5 ms for a 40-message chat history.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import openai
from openai.types import Completion as TextCompletion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from rolecraft.errors import RolecraftError
from rolecraft.llm.base import (
    ChatModel,
    Completion,
    Conversation,
    SamplingParams,
    TokenLogprob,
    TopLogprob,
    as_messages,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_CONCURRENCY = 16
LOCAL_API_KEY = "EMPTY"  # local servers (vLLM, llama.cpp) accept any key but the client wants one
_SPEC_URL = re.compile(r"^(?P<name>[^@]+)@(?P<url>.+)$")


def split_name(name: str) -> tuple[str, str | None]:
    """`qwen@http://127.0.0.1:8000/v1` → ("qwen", "http://127.0.0.1:8000/v1"); no `@` → (name, None)."""
    match = _SPEC_URL.match(name)
    return (match["name"], match["url"]) if match else (name, None)


def _check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise RolecraftError(
            f"'{url}' is not a server URL",
            "give the base URL with its scheme and /v1, e.g. openai:NAME@http://127.0.0.1:8000/v1",
        )
    return url.rstrip("/")


class OpenAIChatModel(ChatModel):
    provider = "openai"
    batch_size = 1

    def __init__(
        self,
        name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int | None = None,  # None: $ROLECRAFT_OPENAI_CONCURRENCY, else DEFAULT_CONCURRENCY
        timeout: float = 60.0,
        max_retries: int = 5,
        strict_schema: bool = False,
    ):
        model, spec_url = split_name(name)
        super().__init__(model)
        self.base_url = _check_url(base_url or spec_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key and self.base_url == DEFAULT_BASE_URL:
            raise RolecraftError(
                f"no API key for {self.base_url}",
                "set OPENAI_API_KEY, or point openai:NAME@URL / OPENAI_BASE_URL at a local server",
            )
        self._api_key = key or LOCAL_API_KEY
        self.concurrency = max(1, concurrency if concurrency is not None else _concurrency_from_env())
        self.timeout = timeout
        self.max_retries = max_retries
        # OpenAI's strict mode guarantees the schema but rejects schemas with optional fields.
        self.strict_schema = strict_schema
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: openai.AsyncOpenAI | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def spec(self) -> str:
        return f"openai:{self.name}@{self.base_url}"

    def identity(self) -> dict[str, Any]:
        return {"provider": self.provider, "name": self.name, "base_url": self.base_url}

    def _session(self) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        # Connections and semaphores belong to one event loop; each `run_sync` call starts a new one.
        # A plain httpx client, because the default one's __del__ tries to close its sockets on the
        # current loop and logs "Event loop is closed" when they belonged to a finished one.
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._client is None or self._slots is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key,
                timeout=self.timeout,
                max_retries=self.max_retries,
                http_client=openai.DefaultAsyncHttpxClient(timeout=self.timeout),
            )
            self._slots = asyncio.Semaphore(self.concurrency)
            self._loop = loop
        return self._client, self._slots

    async def generate(
        self,
        conversations: Sequence[Conversation],
        params: SamplingParams,
        schema: dict[str, Any] | None = None,
    ) -> list[Completion]:
        return list(await asyncio.gather(*(self._chat(c, params, schema) for c in conversations)))

    async def complete(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        return list(await asyncio.gather(*(self._complete(p, params) for p in prompts)))

    async def _chat(self, conversation: Conversation, params: SamplingParams, schema: dict[str, Any] | None) -> Completion:
        client, slots = self._session()
        extra: dict[str, Any] = {}
        if schema is not None:
            name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title", "response")))[:64]
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": self.strict_schema},
            }
        messages = [m.model_dump() for m in as_messages(conversation)]
        async with slots:
            with self._explained_errors():
                body = {"model": self.name, "messages": messages, **_sampling(params, chat=True), **extra}
                response = await client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        choice = response.choices[0]
        return _completion(
            choice.message.content or "", choice.finish_reason, response.usage,
            _logprobs(choice.logprobs, chat=True), _reasoning(choice.message),
        )  # fmt: skip

    async def _complete(self, prompt: str, params: SamplingParams) -> Completion:
        client, slots = self._session()
        async with slots:
            with self._explained_errors():
                body = {"model": self.name, "prompt": prompt, **_sampling(params, chat=False)}
                response = await client.post("/completions", body=body, cast_to=TextCompletion)
        choice = response.choices[0]
        return _completion(choice.text, choice.finish_reason, response.usage, _logprobs(choice.logprobs, chat=False))

    @contextmanager
    def _explained_errors(self) -> Iterator[None]:
        try:
            yield
        except openai.OpenAIError as err:
            raise self._explain(err) from err

    def _explain(self, err: openai.OpenAIError) -> RolecraftError:
        """The client's final error (after its retries) as one line naming the URL and the fix."""
        url, retries = self.base_url, f"{self.max_retries} retries"
        if isinstance(err, openai.APITimeoutError):
            return RolecraftError(
                f"{url} did not answer within {self.timeout:g} s (after {retries})",
                "check the server is healthy, or pass a larger timeout= or a lower concurrency=",
            )
        if isinstance(err, openai.APIConnectionError):
            return RolecraftError(
                f"cannot reach {url} ({_connection_reason(err)})",
                "start the server or pass openai:NAME@URL / OPENAI_BASE_URL",
            )
        if not isinstance(err, openai.APIStatusError):
            return RolecraftError(f"request to {url} failed: {self._scrub(str(err))}", "check the server's answer")
        status, said = err.status_code, self._scrub(err.message)
        if status in (401, 403):
            return RolecraftError(
                f"{url} refused the API key (HTTP {status})",
                "set OPENAI_API_KEY (or pass api_key=) to a key this server accepts",
            )
        if status == 404:
            return RolecraftError(
                f"{url} has no model '{self.name}' or no such endpoint (HTTP 404: {said})",
                f"check the model name (GET {url}/models) and that the URL ends in /v1",
            )
        if status == 429:
            return RolecraftError(
                f"{url} was still rate-limiting after {retries} (HTTP 429: {said})",
                "lower concurrency=, raise max_retries=, or wait for your quota",
            )
        if status >= 500:
            return RolecraftError(
                f"{url} failed with HTTP {status} after {retries}: {said}", "check the server's logs and retry"
            )
        return RolecraftError(
            f"{url} rejected the request (HTTP {status}: {said})",
            "check that this server supports the sampling parameters and response_format sent",
        )

    def _scrub(self, text: str) -> str:
        """Server messages sometimes quote the key they got; never pass it on."""
        line = " ".join(text.split())[:300]
        return line.replace(self._api_key, "***") if len(self._api_key) >= 8 else line

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.close()
        self._client = self._slots = self._loop = None

    async def stream(self, conversation: Conversation, params: SamplingParams) -> AsyncIterator[Completion]:
        messages = [m.model_dump() for m in as_messages(conversation)]
        async for chunk in self._stream("chat", messages=messages, **_sampling(params, chat=True)):
            yield chunk

    async def stream_complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[Completion]:
        async for chunk in self._stream("text", prompt=prompt, **_sampling(params, chat=False)):
            yield chunk

    async def _stream(self, kind: str, **request: Any) -> AsyncIterator[Completion]:
        """The server's stream passed through as it arrives; usage comes with its last event."""
        client, slots = self._session()
        path, chunk = ("/chat/completions", ChatCompletionChunk) if kind == "chat" else ("/completions", TextCompletion)
        body = {"model": self.name, "stream": True, "stream_options": {"include_usage": True}, **request}
        finish, usage = None, None
        async with slots:
            with self._explained_errors():
                events = await client.post(path, body=body, cast_to=chunk, stream=True, stream_cls=openai.AsyncStream[chunk])
                async with events:  # closes the connection when the consumer stops early
                    async for event in events:
                        usage = event.usage or usage
                        for choice in event.choices:
                            chat = kind == "chat"
                            text = (choice.delta.content if chat else choice.text) or ""
                            logprobs = _logprobs(choice.logprobs, chat)
                            reasoning = _reasoning(choice.delta) if chat else ""
                            finish = choice.finish_reason or finish
                            if text or logprobs or reasoning:
                                yield Completion(text=text, logprobs=logprobs, reasoning=reasoning)
        yield _completion("", finish, usage)


def _concurrency_from_env() -> int:
    value = os.environ.get("ROLECRAFT_OPENAI_CONCURRENCY", "").strip()
    if not value:
        return DEFAULT_CONCURRENCY
    if not value.isdigit() or int(value) < 1:
        raise RolecraftError(
            f"ROLECRAFT_OPENAI_CONCURRENCY={value!r} is not a positive whole number",
            f"set it to the requests to keep in flight per model, e.g. 32, or unset it for {DEFAULT_CONCURRENCY}",
        )
    return int(value)


def _sampling(params: SamplingParams, chat: bool) -> dict[str, Any]:
    options: dict[str, Any] = {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": params.seed,
    }
    if params.stop:
        options["stop"] = params.stop
    # Only samplers that are set: OpenAI itself rejects the local servers' ones (top_k, min_p, ...).
    for name in ("frequency_penalty", "presence_penalty", "top_k", "min_p", "repetition_penalty"):
        if (value := getattr(params, name)) != SamplingParams.model_fields[name].default:
            options[name] = value
    if params.logit_bias:
        options["logit_bias"] = {str(token): bias for token, bias in params.logit_bias.items()}
    if params.logprobs is not None:
        options.update({"logprobs": True, "top_logprobs": params.logprobs} if chat else {"logprobs": params.logprobs})
    return options


def _completion(text: str, finish_reason: str | None, usage: Any, logprobs: list[TokenLogprob] | None = None,
                reasoning: str = "") -> Completion:  # fmt: skip
    return Completion(
        text=text,
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        finish_reason="length" if finish_reason == "length" else "stop",
        logprobs=logprobs,
        reasoning=reasoning,
    )


def _logprobs(given: Any, chat: bool) -> list[TokenLogprob] | None:
    """The server's log-probabilities in either of OpenAI's shapes (chat: `content`; text: parallel lists)."""
    if given is None:
        return None
    if chat:
        return [
            TokenLogprob(token=t.token, logprob=t.logprob, top_logprobs=[TopLogprob(token=a.token, logprob=a.logprob) for a in t.top_logprobs or []])
            for t in given.content or []
        ]  # fmt: skip
    tops = given.top_logprobs or [{} for _ in given.tokens or []]
    return [
        TokenLogprob(token=token, logprob=logprob or 0.0, top_logprobs=[TopLogprob(token=k, logprob=v) for k, v in (top or {}).items()])
        for token, logprob, top in zip(given.tokens or [], given.token_logprobs or [], tops)
    ]  # fmt: skip


def _reasoning(message: Any) -> str:
    """Thinking a reasoning model's server sends apart (vLLM, DeepSeek: reasoning_content; others: reasoning)."""
    extra = getattr(message, "model_extra", None) or {}
    return extra.get("reasoning_content") or extra.get("reasoning") or ""


def _connection_reason(err: BaseException) -> str:
    """The root cause of a connection failure, in a few words."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "unknown host"
        if cause.__cause__ is None and cause.__context__ is None:
            return str(cause) or type(cause).__name__
        cause = cause.__cause__ or cause.__context__
    return "connection error"
