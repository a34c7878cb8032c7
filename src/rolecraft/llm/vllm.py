"""Offline vLLM engine backend for GPU machines: `vllm:MODEL` or `vllm:MODEL@ADAPTER`.

vLLM has no CPU wheel, so it is imported only when this backend is built; without it the user gets
one clear line instead of an ImportError at `import rolecraft`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rolecraft.errors import RolecraftError
from rolecraft.llm.base import ChatModel, Completion, Conversation, SamplingParams, adapter_digest, as_messages


class VLLMChatModel(ChatModel):
    provider = "vllm"

    def __init__(self, name: str, adapter: str | None = None, batch_size: int = 256, **engine_args: Any):
        if adapter is None and "@" in name:
            name, _, adapter = name.partition("@")
        super().__init__(name)
        try:
            import vllm
        except ImportError:
            raise RolecraftError(
                "the vllm: backend needs vLLM, which is not installed (it has no CPU build)",
                "on a GPU machine run `pip install vllm`; on CPU use hf:MODEL or 'embedded'",
            ) from None
        self._vllm = vllm
        self.adapter = adapter
        self.batch_size = batch_size
        engine_args.setdefault("enable_lora", adapter is not None)
        self.engine = vllm.LLM(model=name, **engine_args)
        self._lock = asyncio.Lock()

    def identity(self) -> dict[str, Any]:
        ident = {"provider": self.provider, "name": self.name}
        if self.adapter:
            ident["adapter"] = adapter_digest(self.adapter)
        return ident

    def _sampling(self, params: SamplingParams, schema: dict[str, Any] | None):
        extra: dict[str, Any] = {}
        if schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            extra["structured_outputs"] = StructuredOutputsParams(json=schema)
        return self._vllm.SamplingParams(
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            stop=params.stop or None,
            **extra,
        )

    def _lora(self):
        if not self.adapter:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(Path(self.adapter).name, 1, self.adapter)

    @staticmethod
    def _completions(outputs) -> list[Completion]:
        return [
            Completion(
                text=o.outputs[0].text,
                prompt_tokens=len(o.prompt_token_ids or []),
                completion_tokens=len(o.outputs[0].token_ids),
                finish_reason="length" if o.outputs[0].finish_reason == "length" else "stop",
            )
            for o in outputs
        ]

    async def generate(
        self, conversations: Sequence[Conversation], params: SamplingParams, schema: dict[str, Any] | None = None
    ) -> list[Completion]:
        chats = [[m.model_dump() for m in as_messages(c)] for c in conversations]
        async with self._lock:
            outputs = await asyncio.to_thread(
                self.engine.chat, chats, self._sampling(params, schema), use_tqdm=False, lora_request=self._lora()
            )
        return self._completions(outputs)

    async def complete(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        async with self._lock:
            outputs = await asyncio.to_thread(
                self.engine.generate, list(prompts), self._sampling(params, None), use_tqdm=False, lora_request=self._lora()
            )
        return self._completions(outputs)
