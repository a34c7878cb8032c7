"""llama.cpp backend: a GGUF model on CPU, batched, schema-constrained, with an optional LoRA adapter.

Spec: `llamacpp:MODEL.gguf` or `llamacpp:MODEL.gguf@ADAPTER`, ADAPTER a PEFT folder (what `rolecraft
train` writes), converted once to a GGUF LoRA (rolecraft.llm.gguf_lora). The embedded model runs here.

- Prompts render through the model's own chat template (from the GGUF) exactly as transformers renders
  them, and are tokenized as transformers tokenizes them (special tokens parsed, no BOS added).
- Requests from every concurrent call share one continuous batch (rolecraft.llm.llamacpp_engine);
  every `SamplingParams` field is honoured (rolecraft.llm.sampling). A request's random draws come from
  its own seed, derived from `seed` and its prompt, so the same request gives the same output in any
  run and in any batch.
- A JSON schema constrains decoding through llguidance: a token mask per step in about 0.05 ms, a
  grammar built in milliseconds with no token index to hold. JSON is written compactly with single
  spaces after ':' and ',' (a small model otherwise pads with whitespace), and string bounds hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from functools import cache, cached_property
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rolecraft.errors import RolecraftError
from rolecraft.llm.base import ChatModel, Completion, Conversation, Message, SamplingParams, TokenLogprob, as_messages
from rolecraft.llm.stops import TokenHold

PLAIN_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)  # only for a GGUF without a chat template of its own, as in the hf: backend
JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
KEPT_GRAMMARS = 64  # compiled schema grammars kept per model (a few KB each)


@cache
def file_digest(path: Path) -> str:
    """Content hash of a model file, so the request cache follows the weights, not where they lie."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()[:16]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class LlamaCppChatModel(ChatModel):
    provider = "llamacpp"

    def __init__(
        self,
        name: str,
        adapter: str | Path | None = None,
        batch_size: int = 16,
        threads: int | None = None,
    ):
        if adapter is None and "@" in name:
            name, _, adapter = name.partition("@")
        super().__init__(name)
        self.path = Path(name).expanduser()
        if not self.path.is_file():
            raise RolecraftError(f"'{name}' is not a GGUF model file", "pass the path of a .gguf file, e.g. llamacpp:./model.gguf")
        self.adapter = Path(adapter) if adapter else None
        if self.adapter and not (self.adapter / "adapter_config.json").exists():
            raise RolecraftError(
                f"{self.adapter} is not a LoRA adapter folder (no adapter_config.json)",
                "pass the folder `rolecraft train` wrote, e.g. WORKSPACE/adapters/sft",
            )
        self.batch_size = batch_size
        self.threads = threads or int(os.environ.get("ROLECRAFT_THREADS") or 0) or usable_cores()
        self._grammars: OrderedDict[str, str] = OrderedDict()
        self._grammar_lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        ident = {
            "provider": self.provider,
            "name": self.path.name,
            "weights": file_digest(self.path),
            "runtime": f"llama-cpp-python {version('llama-cpp-python')}",
        }
        if self.adapter:
            from rolecraft.llm.base import adapter_digest

            ident["adapter"] = adapter_digest(self.adapter)
        return ident

    # -- loading -------------------------------------------------------------------------------

    @cached_property
    def weights(self):
        from rolecraft.llm.llamacpp_weights import Weights

        if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llguidance") is None:
            raise RolecraftError(
                "llama-cpp-python or llguidance is not installed",
                'install rolecraft with its runtime: pip install "torch==2.13.0" -e ".[embedded]"',
            )
        return Weights.load(self.path.resolve())

    @cached_property
    def engine(self):
        from rolecraft.llm.gguf_lora import gguf_lora
        from rolecraft.llm.llamacpp_engine import Engine
        from rolecraft.weights import cache_root

        lora = gguf_lora(self.adapter, self.path, cache_root()) if self.adapter else None
        return Engine(self.weights, slots=self.batch_size, threads=self.threads, adapter=lora)

    @cached_property
    def template(self):
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str):
            raise RolecraftError(f"the chat template refused the conversation: {message}", "check the roles' order")

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        return env.from_string(self.weights.chat_template or PLAIN_TEMPLATE)

    def render(self, messages: Sequence[Message | dict[str, str]]) -> str:
        """The exact prompt text a conversation becomes (chat template + generation prompt)."""
        return self.template.render(messages=[m.model_dump() for m in as_messages(messages)], add_generation_prompt=True)

    def codec(self) -> LlamaCppCodec:
        return LlamaCppCodec(self)

    # -- generation ----------------------------------------------------------------------------

    async def generate(
        self,
        conversations: Sequence[Conversation],
        params: SamplingParams,
        schema: dict[str, Any] | None = None,
    ) -> list[Completion]:
        return await self._run([self.render(c) for c in conversations], params, schema)

    async def complete(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        return await self._run(list(prompts), params, None)

    async def stream(self, conversation: Conversation, params: SamplingParams) -> AsyncIterator[Completion]:
        async for chunk in self._stream(self.render(conversation), params):
            yield chunk

    async def stream_complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[Completion]:
        async for chunk in self._stream(prompt, params):
            yield chunk

    async def _run(self, texts: list[str], params: SamplingParams, schema: dict | None) -> list[Completion]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]

        def requests():
            return [self._request(t, params, schema, lambda result, f=f: _settle(loop, f, result)) for t, f in zip(texts, futures)]

        requests = await asyncio.to_thread(requests)
        for request in requests:
            self.engine.submit(request)
        try:
            return list(await asyncio.gather(*futures))
        finally:
            for request in requests:  # those still waiting or running when the caller gave up
                request.cancelled = True

    async def _stream(self, text: str, params: SamplingParams) -> AsyncIterator[Completion]:
        """Pieces as the worker thread decodes them, with their tokens' log-probabilities when asked
        for. Text that could still turn into a stop string is held back until it cannot; a consumer
        that goes away frees the sequence at the next step."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[tuple[str, TokenLogprob | None] | Completion | BaseException] = asyncio.Queue()
        request = await asyncio.to_thread(self._request, text, params, None, lambda result: _call(loop, pieces.put_nowait, result))
        request.on_piece = lambda piece, entry: _call(loop, pieces.put_nowait, (piece, entry))
        self.engine.submit(request)
        held = TokenHold(params.stop)
        try:
            while True:
                item = await pieces.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Completion):
                    rest, entries = held.finish(item.text)
                    yield item.model_copy(update={"text": rest, "logprobs": entries or None})
                    return
                out, entries = held.push(*item)
                if out:
                    yield Completion(text=out, logprobs=entries or None)
        finally:
            request.cancelled = True

    def _request(self, text: str, params: SamplingParams, schema: dict | None, finish):
        """A request for the engine (tokenizing and compiling the schema off the event loop)."""
        from rolecraft.llm.llamacpp_engine import Request

        tokens = self.weights.tokenize(text)
        digest = hashlib.sha256(json.dumps([params.seed, tokens]).encode()).digest()
        seed = int.from_bytes(digest[:8], "little")
        return Request(tokens, params, seed, finish, matcher=self._matcher(schema) if schema is not None else None)

    def _matcher(self, schema: dict[str, Any]):
        import llguidance

        key = json.dumps(schema, sort_keys=True)
        with self._grammar_lock:
            if key not in self._grammars:
                if len(self._grammars) >= KEPT_GRAMMARS:
                    self._grammars.popitem(last=False)
                # The schema as given (not the sorted key): fields are generated in declaration order.
                self._grammars[key] = llguidance.LLMatcher.grammar_from_json_schema(closed(schema), defaults=JSON_STYLE)
            self._grammars.move_to_end(key)
            grammar = self._grammars[key]
        matcher = llguidance.LLMatcher(self.weights.grammar_tokenizer, grammar)
        if matcher.is_error():
            raise RolecraftError(f"the JSON schema cannot constrain decoding: {matcher.get_error()}", "simplify the schema")
        return matcher

    async def aclose(self) -> None:
        if "engine" in self.__dict__:
            await asyncio.to_thread(self.engine.close)


def closed(schema: Any) -> Any:
    """The schema with every object closed to the properties it lists, unless it says otherwise.
    JSON Schema lets unlisted keys through by default, and a small model then invents keys until it
    runs out of tokens; callers mean the fields they declared (pydantic models, and outlines)."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _settle(loop: asyncio.AbstractEventLoop, future: asyncio.Future, result: Completion | BaseException) -> None:
    def settle() -> None:
        if future.done():  # the caller stopped waiting
            return
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)

    _call(loop, settle)


def _call(loop: asyncio.AbstractEventLoop, function, *args) -> None:
    """Run `function` on the caller's event loop, from the engine's thread; a loop that has ended
    (its caller gave up and `run_sync` closed it) has nobody left to tell."""
    try:
        loop.call_soon_threadsafe(function, *args)
    except RuntimeError:
        pass


class LlamaCppCodec:
    """The tokenizer of a llama.cpp model (see TokenCodec), for the server's /tokenize and logit_bias."""

    def __init__(self, model: LlamaCppChatModel):
        self.weights = model.weights
        self.render = model.render
        self.vocab_size = self.weights.n_vocab
        self.context_length = self.weights.n_ctx_train

    def encode(self, text: str, special: bool = True) -> list[int]:
        return self.weights.tokenize(text, special)

    def decode(self, ids: Sequence[int]) -> str:
        return self.weights.detokenize(list(ids))
