"""Many characters on one base model: their LoRA adapters are loaded once and switched per request.

PEFT injects every adapter's LoRA layers into the one base model; `set_adapter` picks which one the
layers apply (~3 ms) and `disable_adapter()` gives the base model exactly, for prompt-only characters.
The weights are shared state, so one request at a time holds them: `_turn` is the queue. Requests
wait there in arrival order (asyncio.Lock is fair) while generation runs in a worker thread, so the
server keeps accepting, validating and streaming meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from rolecraft.errors import RolecraftError
from rolecraft.llm.base import ChatModel, Completion, Conversation, SamplingParams, adapter_digest
from rolecraft.llm.hf import HFChatModel, HFCodec

log = logging.getLogger(__name__)


class MultiLoraModel:
    """One loaded base model plus named LoRA adapters; `view(name)` is the ChatModel for one of them."""

    def __init__(self, base: HFChatModel):
        if base.adapter is not None:
            raise RolecraftError("the shared base model must not carry its own adapter", "pass the base model alone")
        self.base = base
        self.adapters: dict[str, Path] = {}
        self._peft: Any = None  # the PeftModel once the first adapter is loaded
        self._turn = asyncio.Lock()

    def add(self, name: str, path: Path) -> None:
        """Load an adapter under `name` now, so a broken or mismatched adapter fails at startup."""
        from peft import PeftModel

        if name in self.adapters:
            raise RolecraftError(f"two adapters are named '{name}'", "give every served character its own id")
        _warn_if_other_base(path, self.base.name)
        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self.base.model, str(path), adapter_name=name)
                self._peft.eval()
            else:
                self._peft.load_adapter(str(path), adapter_name=name)
        except (RuntimeError, ValueError, OSError) as e:
            raise RolecraftError(
                f"cannot load the adapter {path} onto {self.base.name} ({str(e).splitlines()[0][:200]})",
                "serve it with the base model it was trained on (--model), or retrain it",
            ) from None
        self.adapters[name] = path

    def view(self, adapter: str | None) -> AdapterModel:
        if adapter is not None and adapter not in self.adapters:
            raise KeyError(adapter)
        return AdapterModel(self, adapter)

    @asynccontextmanager
    async def using(self, adapter: str | None) -> AsyncIterator[HFChatModel]:
        """Hold the weights with `adapter` active (None: the plain base model) until the block ends."""
        async with self._turn:
            with self._activated(adapter):
                yield self.base

    @contextmanager
    def _activated(self, adapter: str | None):
        if self._peft is None:
            yield
        elif adapter is None:
            with self._peft.disable_adapter():
                yield
        else:
            self._peft.set_adapter(adapter)
            yield


class AdapterModel(ChatModel):
    """One character's model: the shared base with that character's adapter (or none) active."""

    provider = "hf"

    def __init__(self, shared: MultiLoraModel, adapter: str | None):
        super().__init__(shared.base.name)
        self.shared = shared
        self.adapter = adapter
        self.batch_size = shared.base.batch_size

    def identity(self) -> dict[str, Any]:
        ident = self.shared.base.identity()
        if self.adapter is not None:
            ident["adapter"] = adapter_digest(self.shared.adapters[self.adapter])
        return ident

    def codec(self) -> HFCodec:
        return self.shared.base.codec()

    async def generate(
        self, conversations: Sequence[Conversation], params: SamplingParams, schema: dict[str, Any] | None = None
    ) -> list[Completion]:
        async with self.shared.using(self.adapter) as base:
            return await base.generate(conversations, params, schema)

    async def complete(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        async with self.shared.using(self.adapter) as base:
            return await base.complete(prompts, params)

    async def stream(self, conversation: Conversation, params: SamplingParams) -> AsyncIterator[Completion]:
        async with self.shared.using(self.adapter) as base:
            async for chunk in base.stream(conversation, params):
                yield chunk

    async def stream_complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[Completion]:
        async with self.shared.using(self.adapter) as base:
            async for chunk in base.stream_complete(prompt, params):
                yield chunk


def _warn_if_other_base(adapter: Path, served: str) -> None:
    import json

    try:
        trained_on = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
    except (OSError, ValueError):
        return
    if trained_on and Path(trained_on).name != Path(served).name:
        log.warning("adapter %s was trained on %s but is served on %s", adapter, trained_on, served)
