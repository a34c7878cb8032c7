"""Local transformers backend: batched chat generation on CPU or GPU, optional LoRA adapter,
schema-constrained JSON through outlines' logits processors, the samplers front ends send and
log-probabilities (rolecraft.llm.hf_sampling).

Spec: `hf:MODEL` or `hf:MODEL@ADAPTER`, MODEL a local folder or an id already in the HF cache.
The model loads on first use, so building the backend (e.g. for `--help` or a cache hit) is free.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from rolecraft.errors import RolecraftError
from rolecraft.llm.base import (
    ChatModel,
    Completion,
    Conversation,
    ConversationError,
    SamplingParams,
    TokenLogprob,
    adapter_digest,
    as_messages,
)
from rolecraft.memory import release_memory, trim_heap
from rolecraft.weights import LOAD_LOCK

# Used only when a tokenizer has no chat template of its own (e.g. a base model).
KEPT_PROCESSORS = 2  # JSON-schema processors kept per model: the index of one can take a GB
PLAIN_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


class HFChatModel(ChatModel):
    provider = "hf"

    def __init__(
        self,
        name: str,
        adapter: str | Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
    ):
        if adapter is None and "@" in name:
            name, _, adapter = name.partition("@")
        super().__init__(name)
        self.adapter = Path(adapter) if adapter else None
        if self.adapter and not (self.adapter / "adapter_config.json").exists():
            raise RolecraftError(
                f"{self.adapter} is not a LoRA adapter folder (no adapter_config.json)",
                "pass the folder `rolecraft train` wrote, e.g. WORKSPACE/adapters/sft",
            )
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self._loop_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._processors: OrderedDict[str, Any] = OrderedDict()  # schema → processor, most recent last

    @property
    def _lock(self) -> asyncio.Lock:
        """One generate at a time per model. An asyncio.Lock belongs to the event loop it first waits
        in, and every `run_sync` call runs a fresh loop, so the lock is made anew for each loop."""
        loop = asyncio.get_running_loop()
        if self._loop_lock is None or self._loop_lock[0] is not loop:
            self._loop_lock = (loop, asyncio.Lock())
        return self._loop_lock[1]

    def identity(self) -> dict[str, Any]:
        ident = {"provider": self.provider, "name": self.name}
        if self.adapter:
            ident["adapter"] = adapter_digest(self.adapter)
        return ident

    # -- loading -------------------------------------------------------------------------------

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.local_path())
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if not tok.chat_template:
            tok.chat_template = PLAIN_TEMPLATE
        return tok

    @cached_property
    def model(self):
        import torch
        from transformers import AutoModelForCausalLM

        with LOAD_LOCK:
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = getattr(torch, self.dtype) if self.dtype else (torch.bfloat16 if device == "cuda" else torch.float32)
            model = AutoModelForCausalLM.from_pretrained(self.local_path(), dtype=dtype).to(device)
            if self.adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(self.adapter))
            model.eval()
            return model

    def local_path(self) -> str:
        """The folder holding the weights: the name itself, or its snapshot in the HF cache."""
        path = Path(self.name).expanduser()
        if path.exists():
            return str(path)
        try:
            from huggingface_hub import snapshot_download

            return snapshot_download(self.name, local_files_only=True)
        except Exception:
            raise RolecraftError(
                f"model '{self.name}' is neither a local folder nor in the Hugging Face cache",
                "pass a folder with config.json, download the model once, or use 'embedded'",
            ) from None

    # -- generation ----------------------------------------------------------------------------

    async def generate(
        self,
        conversations: Sequence[Conversation],
        params: SamplingParams,
        schema: dict[str, Any] | None = None,
    ) -> list[Completion]:
        prompts = [self.render(as_messages(c)) for c in conversations]
        return await self._run(prompts, params, schema)

    async def complete(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        return await self._run(list(prompts), params, None)

    def render(self, messages: Sequence[Any]) -> str:
        """The exact prompt text a conversation becomes (chat template + generation prompt)."""
        from jinja2 import TemplateError

        try:
            return self.tokenizer.apply_chat_template(
                [m.model_dump() for m in as_messages(messages)], tokenize=False, add_generation_prompt=True
            )
        except (TemplateError, ValueError) as e:  # e.g. roles that do not alternate, or no message
            raise ConversationError(f"the chat template of {self.name} rejects this conversation ({e})", "change the messages") from None

    async def _run(self, prompts: list[str], params: SamplingParams, schema: dict | None) -> list[Completion]:
        # One generate at a time per model: torch already uses every core for a batch.
        async with self._lock:
            out: list[Completion] = []
            for start in range(0, len(prompts), self.batch_size):
                batch = prompts[start : start + self.batch_size]
                out += await asyncio.to_thread(self._generate_batch, batch, params, schema)
            return out

    def _generate_batch(
        self,
        prompts: list[str],
        params: SamplingParams,
        schema: dict | None,
        on_text: Callable[[int, str, list[TokenLogprob] | None], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Completion]:
        import torch
        from transformers import StoppingCriteriaList

        from rolecraft.llm.hf_sampling import NEUTRAL, NEUTRAL_SAMPLING, LogprobRecorder, Tracer, processors

        tok, model = self.tokenizer, self.model
        # Chat templates already contain BOS where the model wants it.
        inputs = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        # Seeded by the batch's content: the same batch samples the same tokens in any run.
        digest = hashlib.sha256(json.dumps([params.seed, prompts]).encode()).digest()
        torch.manual_seed(int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF)
        constraint = None
        if schema is not None:
            constraint = self._json_processor(schema)
            constraint.reset()
        recorder = LogprobRecorder() if params.logprobs is not None else None
        tracer = Tracer(tok, len(prompts), params, self._eos_ids, recorder, on_text, cancel)
        with torch.inference_mode():
            model.generate(
                **inputs,
                **(NEUTRAL if params.greedy else NEUTRAL_SAMPLING),
                max_new_tokens=params.max_tokens,
                pad_token_id=tok.pad_token_id,
                do_sample=not params.greedy,
                logits_processor=processors(params, inputs["input_ids"].shape[1], tok.eos_token_id, constraint, recorder),
                stopping_criteria=StoppingCriteriaList([tracer]),
            )
        trim_heap()  # a long batch frees GBs of activations that glibc would otherwise keep
        return tracer.completions([int(n) for n in inputs["attention_mask"].sum(dim=1)])

    @cached_property
    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        return ids | {self.tokenizer.eos_token_id}

    async def stream(self, conversation: Conversation, params: SamplingParams) -> AsyncIterator[Completion]:
        async for chunk in self._stream(self.render(as_messages(conversation)), params):
            yield chunk

    async def stream_complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[Completion]:
        async for chunk in self._stream(prompt, params):
            yield chunk

    async def _stream(self, prompt: str, params: SamplingParams) -> AsyncIterator[Completion]:
        """generate() runs in a thread and hands each piece of text that is sure to stay (not the
        start of a stop string) to this loop; a consumer that goes away (a closed HTTP stream) stops
        the generation at the next token."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[Completion | None] = asyncio.Queue()

        def on_text(row: int, text: str, logprobs: list[TokenLogprob] | None) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, Completion(text=text, logprobs=logprobs))

        cancel = threading.Event()
        await self._lock.acquire()
        task = asyncio.ensure_future(asyncio.to_thread(self._generate_batch, [prompt], params, None, on_text, cancel))
        task.add_done_callback(lambda _: pieces.put_nowait(None))  # after every piece the thread queued
        try:
            while (piece := await pieces.get()) is not None:
                yield piece
            [done] = await task
        finally:
            # A cancelled consumer may not await anything any more, so the thread itself hands the
            # model back when it ends (at the next token once `cancel` is set).
            cancel.set()
            task.add_done_callback(lambda _: self._lock.release())
        yield done.model_copy(update={"text": "", "logprobs": None})

    def codec(self) -> HFCodec:
        return self._codec

    @cached_property
    def _codec(self) -> HFCodec:
        return HFCodec(self)

    def _json_processor(self, schema: dict[str, Any]):
        """An outlines JSON-schema logits processor, built once per schema. Only the most recent few
        are kept: the token index of a schema with length-bounded strings takes hundreds of MB to GB."""
        key = json.dumps(schema, sort_keys=True)
        if key in self._processors:
            self._processors.move_to_end(key)
        else:
            if len(self._processors) >= KEPT_PROCESSORS:
                self._processors.popitem(last=False)
                release_memory()
            import outlines
            from outlines.backends.outlines_core import OutlinesCoreBackend

            if not hasattr(self, "_outlines_backend"):
                self._outlines_backend = OutlinesCoreBackend(outlines.from_transformers(self.model, self.tokenizer))
            # Single spaces only between JSON tokens: a small model otherwise pads with whitespace.
            # The schema as given (not the sorted key): fields are generated in declaration order.
            self._processors[key] = self._outlines_backend.get_json_schema_logits_processor(json.dumps(schema), r"[ ]?")
        return self._processors[key]


class HFCodec:
    """The tokenizer of an hf: model (see TokenCodec); reading the config does not load the weights."""

    def __init__(self, model: HFChatModel):
        from transformers import AutoConfig

        self.tokenizer = model.tokenizer
        self.render = model.render
        self.vocab_size = len(self.tokenizer)
        config = AutoConfig.from_pretrained(model.local_path())
        self.context_length = getattr(config, "max_position_embeddings", None)

    def encode(self, text: str, special: bool = True) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))
