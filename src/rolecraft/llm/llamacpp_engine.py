"""Continuous batching over llama.cpp's C API: one context, many sequences in every decode step.

llama-cpp-python's `Llama` class decodes one sequence at a time. Here one worker thread keeps up to
`slots` sequences running: each step reads the prompts of newly admitted requests, then hands every
running sequence's last token to a single `llama_decode` and picks each sequence's next token from its
logits (rolecraft.llm.sampling) under its JSON-schema mask (llguidance). A finished sequence frees its
slot for the next waiting request at once, so concurrent `generate` calls share the batch.

Prompt reuse: a slot keeps the tokens its KV cache holds after its sequence ends, and a new request
goes to the free slot whose cache shares the longest prefix with its prompt, or copies the cache of a
running sequence that shares a longer one; only the rest of the prompt is read. A build's requests
mostly share a long system prompt (the persona, the profile, a task's instructions), and reading
prompts was most of the embedded model's time.

Determinism: the KV cache is split per sequence (`kv_unified=False`), flash attention is off and each
prompt is read in a decode of its own; llama.cpp's CPU kernels then compute a sequence's logits bit
for bit the same whatever else runs, however many threads, however large the context and however much
of its prompt was read for an earlier request (tests/test_llamacpp.py checks it). A request's output
depends only on its prompt, its settings and its seed, never on how requests were batched.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rolecraft.compute import on_compute_thread
from rolecraft.errors import RolecraftError
from rolecraft.llm.base import Completion, SamplingParams, TokenLogprob, TopLogprob
from rolecraft.llm.llamacpp_prefix import SlotCaches
from rolecraft.llm.llamacpp_weights import Weights
from rolecraft.llm.sampling import TokenChooser, unpack_mask
from rolecraft.llm.tokens import clip_logprobs

log = logging.getLogger(__name__)
MIN_CONTEXT = 1024  # tokens per sequence; grown (powers of two) up to the model's own for longer requests
# KV cells per engine (~380 MB for the embedded model): 16 sequences of up to 1,024 tokens, or 8 of
# 2,048, and so on; a longer context takes slots away rather than adding memory. Sixteen at once instead
# of eight made the build's generation stages ~10 % faster (bench/results/runtime.md).
KV_CELLS = 16_384


@dataclass
class Request:
    prompt: list[int]
    params: SamplingParams
    seed: int
    finish: Callable[[Completion | BaseException], None]  # called once, from the worker thread
    matcher: Any = None  # an llguidance LLMatcher when the output must follow a JSON schema
    # Streaming: each token's piece of raw text (may be empty inside a character), and its log-probability.
    on_piece: Callable[[str, TokenLogprob | None], None] | None = None
    cancelled: bool = False  # set by the caller that stopped waiting; the slot is freed at the next step


@dataclass
class _Sequence:
    request: Request
    slot: int
    start: int  # prompt tokens already in the KV cache, read for an earlier request
    source: int  # the slot whose cache is copied first (its prompt shares `start` tokens), or -1
    limit: int  # tokens it may still generate within its context
    chooser: TokenChooser
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    logprobs: list[TokenLogprob] | None = None


class Engine:
    """A llama.cpp context with `slots` sequences and the worker thread that decodes them."""

    def __init__(self, weights: Weights, slots: int, threads: int, adapter: Path | None = None):
        self.weights = weights
        self.max_slots = slots
        self.slots = slots  # fewer while the context is long (KV_CELLS)
        self.threads = threads
        self.lora = weights.adapter(adapter) if adapter else None
        self.requests: queue.Queue[Request | None] = queue.Queue()
        self.ctx: Any = None
        self.seq_tokens = 0  # context size per sequence
        self.cached = SlotCaches(slots)
        self.prompt_tokens_read = 0  # prompt tokens decoded, the cached ones not counted
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, request: Request) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="llamacpp-engine", daemon=True)
                self._thread.start()
        self.requests.put(request)

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self.requests.put(None)
                self._thread.join()
                self._thread = None

    # -- the worker thread ---------------------------------------------------------------------

    def _work(self) -> None:
        waiting: deque[Request] = deque()
        running: dict[int, _Sequence] = {}
        feed: dict[int, int] = {}  # slot → the token to decode next
        closing = False
        while not closing or running:
            if not running and not waiting and not closing:
                item = self.requests.get()
                closing = item is None
                waiting.extend([item] if item else [])
            while True:  # everything submitted meanwhile
                try:
                    item = self.requests.get_nowait()
                except queue.Empty:
                    break
                closing = closing or item is None
                waiting.extend([item] if item else [])
            if closing and not running:
                waiting.clear()
                break
            try:
                for seq in self._admit(waiting, running):
                    self._read_prompt(seq, running, feed)
                if feed:
                    for slot, index in self._decode_next(running, feed).items():
                        self._step(running, feed, slot, index)
            except Exception as error:  # the requests in flight fail; the engine keeps serving
                for seq in running.values():
                    seq.request.finish(error)
                running.clear()
                feed.clear()
                self.cached.clear()
        self._free_context()

    def _free_context(self) -> None:
        import llama_cpp as lc

        if self.ctx is not None:
            lc.llama_free(self.ctx)
            lc.llama_batch_free(self._batch_buffer)
            self.ctx = None

    def _admit(self, waiting: deque[Request], running: dict[int, _Sequence]) -> list[_Sequence]:
        """Move waiting requests into free slots, growing the context first when one needs more room."""
        admitted: list[_Sequence] = []
        while waiting and len(running) < self.slots:
            request = waiting[0]
            if request.cancelled:
                waiting.popleft()
                continue
            n = len(request.prompt)
            if n >= self.weights.n_ctx_train:
                waiting.popleft()
                request.finish(RolecraftError(
                    f"the prompt has {n} tokens, more than the model's context of {self.weights.n_ctx_train}",
                    "shorten the conversation or the character's profile",
                ))
                continue
            need = n + request.params.max_tokens
            if self.ctx is None or (need > self.seq_tokens and self.seq_tokens < self.weights.n_ctx_train):
                if running:
                    break  # a bigger context waits until the running sequences are done
                try:
                    self._make_context(need)
                except Exception as error:
                    waiting.popleft()
                    request.finish(error)
                    continue
            slot, source, start = self.cached.place(request.prompt, running, {a.slot: a.request.prompt for a in admitted})
            waiting.popleft()
            limit = min(request.params.max_tokens, self.seq_tokens - n)
            chooser = TokenChooser(request.params, request.prompt, self.weights.n_vocab, request.seed)
            logprobs = [] if request.params.logprobs is not None else None
            seq = _Sequence(request, slot, start, source, limit, chooser, logprobs=logprobs)
            running[slot] = seq
            admitted.append(seq)
        return admitted

    def _make_context(self, need: int) -> None:
        import llama_cpp as lc

        size = min(self.weights.n_ctx_train, max(MIN_CONTEXT, 1 << (need - 1).bit_length()))
        self._free_context()
        self.slots = max(1, min(self.max_slots, KV_CELLS // size))
        self.cached = SlotCaches(self.slots)
        params = lc.llama_context_default_params()
        params.n_ctx = size * self.slots
        params.n_batch = size + self.slots  # the prompts admitted in one step and a token of each running sequence
        params.n_ubatch = min(512, size)
        params.n_seq_max = self.slots
        params.n_threads = params.n_threads_batch = self.threads
        params.kv_unified = False  # a KV stream per sequence: outputs independent of batch mates
        # Off: llama.cpp's CPU flash attention takes other paths for other query counts, so a prompt's
        # logits would change with its batch mates and with how much of it was read before.
        params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        self.ctx = lc.llama_init_from_model(self.weights.model, params)
        if not self.ctx:
            raise RolecraftError(f"llama.cpp could not allocate a context of {size} tokens × {self.slots}", "lower batch_size")
        if self.lora is not None:
            adapters = (lc.llama_adapter_lora_p_ctypes * 1)(self.lora)
            lc.llama_set_adapters_lora(self.ctx, adapters, 1, (ctypes.c_float * 1)(1.0))
        self.seq_tokens = lc.llama_n_ctx_seq(self.ctx)
        self._batch_buffer = lc.llama_batch_init(size + self.slots, 0, 1)

    def _read_prompt(self, seq: _Sequence, running: dict[int, _Sequence], feed: dict[int, int]) -> None:
        """Bring the slot's cache to the prompt's shared prefix, read the rest alone, pick the first token."""
        import llama_cpp as lc

        memory = lc.llama_get_memory(self.ctx)
        if seq.source >= 0:  # separate streams share nothing: the whole stream is copied, then cut
            lc.llama_memory_seq_cp(memory, seq.source, seq.slot, -1, -1)
        lc.llama_memory_seq_rm(memory, seq.slot, seq.start, -1)
        prompt = seq.request.prompt
        self.cached.tokens[seq.slot] = list(prompt)
        self.prompt_tokens_read += len(prompt) - seq.start
        rows = self._decode([(prompt[pos], pos, seq.slot) for pos in range(seq.start, len(prompt))])
        self._step(running, feed, seq.slot, rows[seq.slot])

    def _decode_next(self, running: dict[int, _Sequence], feed: dict[int, int]) -> dict[int, int]:
        """One token of every running sequence in one decode; slot → row of its logits."""
        tokens = [(token, len(running[slot].request.prompt) + len(running[slot].tokens) - 1, slot) for slot, token in feed.items()]
        for slot, token in feed.items():
            self.cached.tokens[slot].append(token)
        feed.clear()
        return self._decode(tokens)

    def _decode(self, tokens: list[tuple[int, int, int]]) -> dict[int, int]:
        """Decode (token, position, slot) triples, logits for each slot's last one."""
        import llama_cpp as lc

        batch = self._batch_buffer
        batch.n_tokens = len(tokens)
        rows: dict[int, int] = {}
        for k, (token, pos, slot) in enumerate(tokens):
            batch.token[k], batch.pos[k], batch.n_seq_id[k], batch.logits[k] = token, pos, 1, False
            batch.seq_id[k][0] = slot
            rows[slot] = k
        for k in rows.values():
            batch.logits[k] = True
        # On the process's one OpenMP thread (rolecraft.compute): one decode at a time, one team of threads.
        status = on_compute_thread(lc.llama_decode, self.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed ({status})")
        return rows

    def _step(self, running: dict[int, _Sequence], feed: dict[int, int], slot: int, index: int) -> None:
        import llama_cpp as lc

        seq = running[slot]
        request = seq.request
        if request.cancelled:
            del running[slot]
            return
        logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx, index), shape=(self.weights.n_vocab,))
        allowed = None
        if request.matcher is not None:
            bits = np.zeros((self.weights.n_vocab + 31) // 32, dtype=np.int32)
            request.matcher.unsafe_compute_mask_ptr(bits.ctypes.data, bits.nbytes)
            allowed = unpack_mask(bits, self.weights.n_vocab)
        choice = seq.chooser.choose(logits, allowed)
        token = choice.token
        finish = None
        if token in self.weights.eog:
            finish = "stop"
        else:
            if request.matcher is not None and not request.matcher.consume_token(token):
                raise RuntimeError(f"the schema matcher rejected token {token}: {request.matcher.get_error()}")
            seq.chooser.accept(token)
            seq.tokens.append(token)
            piece = seq.decoder.decode(self.weights.pieces[token])
            seq.text += piece
            if seq.logprobs is not None:
                seq.logprobs.append(self._logprob(piece, choice))
            if request.on_piece:
                request.on_piece(piece, seq.logprobs[-1] if seq.logprobs else None)
            if self._stopped(seq, piece) or (request.matcher is not None and request.matcher.is_stopped()):
                finish = "stop"
            elif len(seq.tokens) >= seq.limit:
                finish = "length"
        if finish is None:
            feed[slot] = token
            return
        del running[slot]
        rest = seq.decoder.decode(b"", final=True)  # bytes that never completed a character
        seq.text += rest
        if seq.logprobs:  # the tokens spell the reply exactly (rolecraft.llm.tokens), cut at its stop too
            seq.logprobs[-1] = seq.logprobs[-1].model_copy(update={"token": seq.logprobs[-1].token + rest})
            seq.logprobs = clip_logprobs(seq.logprobs, 0, len(seq.text))
        request.finish(Completion(
            text=seq.text,
            prompt_tokens=len(request.prompt),
            completion_tokens=len(seq.tokens),
            finish_reason=finish,
            logprobs=seq.logprobs,
        ))

    def _stopped(self, seq: _Sequence, piece: str) -> bool:
        """Cut the text at a stop string that the newest piece completed."""
        stops = [s for s in seq.request.params.stop if s]
        if not stops:
            return False
        start = max(0, len(seq.text) - len(piece) - max(map(len, stops)))
        cuts = [i for s in stops if (i := seq.text.find(s, start)) >= 0]
        if not cuts:
            return False
        seq.text = seq.text[: min(cuts)]
        return True

    def _logprob(self, piece: str, choice) -> TokenLogprob:
        """The chosen token as the text it added to the reply ("" inside a character); alternatives as
        their own bytes."""
        def text(t: int) -> str:
            return self.weights.pieces[t].decode("utf-8", errors="replace")

        top = [TopLogprob(token=text(t), logprob=lp) for t, lp in choice.top or []]
        return TokenLogprob(token=piece, logprob=choice.logprob, top_logprobs=top)
