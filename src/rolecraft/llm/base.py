"""The one contract every model backend meets: an async batch of chats in, completions out.

Callers never care which provider runs a request; they ask a `ChatModel` to `generate` a batch of
conversations and get back one `Completion` per conversation, in order. Raw-text continuation
(`complete`) exists for the Character-LLM prompt format and the server's `/v1/completions`.
"""

from __future__ import annotations

import asyncio
import hashlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, Field

from rolecraft.errors import RolecraftError

T = TypeVar("T")


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


Conversation = Sequence[Message]


class SamplingParams(BaseModel):
    """Sampling settings shared by every provider. `seed` makes sampling repeatable per request.

    The samplers after `stop` are the ones chat front ends send (OpenAI's penalties, and the
    top_k / min_p / repetition_penalty of local servers); each backend honours those it can, and their
    defaults change nothing. `logit_bias` maps token ids of the backend's tokenizer to a bias added to
    their logits (-100 bans a token). `logprobs`: how many alternatives to return per generated token
    (0 = only the chosen token's log-probability, None = no log-probabilities).
    """

    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int = 0
    stop: list[str] = Field(default_factory=list)
    top_k: int = Field(0, ge=0)  # 0: off
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0)  # 1.0: off (HF / llama.cpp style, multiplicative)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)  # OpenAI style, additive per occurrence
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    logit_bias: dict[int, float] = Field(default_factory=dict)
    logprobs: int | None = Field(None, ge=0, le=20)

    @property
    def greedy(self) -> bool:
        # A temperature this small would overflow the logits; like vLLM, it means greedy decoding.
        return self.temperature < 1e-5

    def cache_key(self) -> dict[str, Any]:
        """What identifies these settings in a request key: only the fields that differ from their
        defaults, so adding a sampler with a neutral default never invalidates stored calls."""
        return self.model_dump(exclude_defaults=True)


class TopLogprob(BaseModel):
    token: str
    logprob: float


class TokenLogprob(BaseModel):
    """One generated token with its log-probability and the most likely alternatives at that step."""

    token: str
    logprob: float
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class Completion(BaseModel):
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: Literal["stop", "length"] = "stop"
    cached: bool = False
    logprobs: list[TokenLogprob] | None = None  # when SamplingParams.logprobs asked for them
    reasoning: str = ""  # thinking that is not part of the reply (a character's thoughts, a reasoning model's)


class ConversationError(RolecraftError):
    """The model cannot take this conversation (its chat template rejects it): the caller's input."""


class TokenCodec(Protocol):
    """A model's tokenizer as the server's /tokenize endpoints and logit_bias checks use it."""

    vocab_size: int  # token ids are 0 .. vocab_size - 1
    context_length: int | None  # the longest prompt + reply the model takes, when known

    def encode(self, text: str, special: bool = True) -> list[int]:
        """Token ids of `text`; `special` adds the tokens the tokenizer puts around a text (BOS)."""

    def decode(self, ids: Sequence[int]) -> str: ...

    def render(self, conversation: Conversation) -> str:
        """The prompt text a conversation becomes under the model's chat template."""


def as_messages(conversation: Sequence[Message | dict[str, str]]) -> list[Message]:
    return [m if isinstance(m, Message) else Message(**m) for m in conversation]


class ChatModel(ABC):
    """A model that answers batches of conversations.

    `batch_size` is how many conversations the backend prefers per `generate` call; the cache layer
    splits work into batches of that size and persists each as it finishes, which is what makes a
    killed run resumable at fine grain.
    """

    provider: str = ""
    batch_size: int = 8

    def __init__(self, name: str):
        self.name = name

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.name}"

    def identity(self) -> dict[str, Any]:
        """What determines this model's outputs (the request cache keys on it). Never holds secrets."""
        return {"provider": self.provider, "name": self.name}

    @abstractmethod
    async def generate(
        self,
        conversations: Sequence[Conversation],
        params: SamplingParams,
        schema: dict[str, Any] | None = None,
    ) -> list[Completion]:
        """One completion per conversation, in order. With `schema`, output is constrained JSON."""

    async def complete(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        """Continue raw text prompts without a chat template."""
        raise RolecraftError(
            f"the {self.provider}: backend cannot continue raw text prompts",
            "use a chat prompt style, or an hf: / openai: model",
        )

    async def stream(self, conversation: Conversation, params: SamplingParams) -> AsyncIterator[Completion]:
        """One reply in pieces as it is generated: each chunk's `text` is new text, and the last chunk
        carries the reply's `finish_reason` and token counts. Backends that cannot stream yield the
        whole reply as one chunk."""
        [completion] = await self.generate([conversation], params)
        yield completion

    async def stream_complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[Completion]:
        """`complete` for one raw prompt, in pieces (same chunk convention as `stream`)."""
        [completion] = await self.complete([prompt], params)
        yield completion

    def codec(self) -> TokenCodec:
        """The model's tokenizer, for backends that have one here."""
        raise RolecraftError(
            f"the {self.provider}: backend has no tokenizer in this process",
            "count tokens on the server that runs the model, or serve a local hf: / embedded model",
        )

    async def aclose(self) -> None:
        """Release connections or engines (optional)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"


def adapter_digest(path: str | Path) -> str:
    """A LoRA adapter's identity for the request cache: a hash of its weight files, so outputs cached
    for an adapter are never reused after it is retrained (every backend keys adapters this way)."""
    h = hashlib.sha256()
    folder = Path(path)
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous code (CLI, tests, scripts)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    raise RuntimeError("run_sync() called inside a running event loop; await the coroutine instead")
