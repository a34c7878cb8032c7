"""A GGUF model loaded once per process, with what every llama.cpp context of it shares: the
vocabulary's bytes, the chat template, llguidance's view of the tokens, and attached LoRA adapters."""

from __future__ import annotations

import ctypes
import logging
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from rolecraft.errors import RolecraftError
from rolecraft.weights import LOAD_LOCK


def llama_cpp():
    """The llama_cpp module (its OpenMP wait is set when rolecraft is imported: see rolecraft/__init__),
    with llama.cpp's log quiet: its bindings print it unless their logger is set above INFO, and a
    first build would show ~300 lines of loading and quantisation chatter."""
    import llama_cpp

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    return llama_cpp


class Weights:
    """One GGUF loaded once per process (memory-mapped), with what every context of it shares."""

    _loaded: ClassVar[dict[Path, Weights]] = {}

    @classmethod
    def load(cls, path: Path) -> Weights:
        with LOAD_LOCK:
            if path not in cls._loaded:
                cls._loaded[path] = cls(path)
            return cls._loaded[path]

    def __init__(self, path: Path):
        lc = llama_cpp()
        lc.llama_backend_init()
        self.path = path
        self.model = lc.llama_model_load_from_file(str(path).encode(), lc.llama_model_default_params())
        if not self.model:
            raise RolecraftError(f"llama.cpp cannot load {path}", "pass a GGUF model file (is it complete?)")
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = lc.llama_model_n_ctx_train(self.model)
        template = lc.llama_model_chat_template(self.model, None)
        self.chat_template = template.decode() if template else None
        self.eog = {t for t in range(self.n_vocab) if lc.llama_vocab_is_eog(self.vocab, t)}
        self.pieces = [self._piece(t) for t in range(self.n_vocab)]  # each token's bytes, special ones empty
        self._adapters: dict[Path, Any] = {}

    def _piece(self, token: int) -> bytes:
        import llama_cpp as lc

        buffer = ctypes.create_string_buffer(256)
        n = lc.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, False)
        return buffer.raw[:n]

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """Tokens as transformers makes them: special tokens in the text parsed; `special` adds the ones
        the model puts around a text (a BOS where it has one), as a rendered prompt must not."""
        import llama_cpp as lc

        data = text.encode()
        out = (lc.llama_token * (len(data) + 8))()
        n = lc.llama_tokenize(self.vocab, data, len(data), out, len(out), special, True)
        return list(out[:n])

    def detokenize(self, ids: list[int]) -> str:
        """The text of token ids, special tokens written out (as transformers' decode does)."""
        import llama_cpp as lc

        tokens = (lc.llama_token * max(len(ids), 1))(*ids)
        size = 64 + 16 * len(ids)
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = lc.llama_detokenize(self.vocab, tokens, len(ids), buffer, size, False, True)
            if n >= 0:
                return buffer.raw[:n].decode("utf-8", errors="replace")
            size = -n

    @cached_property
    def grammar_tokenizer(self):
        """llguidance's view of the vocabulary (about a second to build, so once per model)."""
        from llguidance.llamacpp import lltokenizer_from_vocab

        with LOAD_LOCK:
            return lltokenizer_from_vocab(self.vocab)

    def adapter(self, gguf_lora: Path):
        """A GGUF LoRA attached to these weights (loaded once; contexts choose whether to apply it)."""
        import llama_cpp as lc

        with LOAD_LOCK:
            if gguf_lora not in self._adapters:
                handle = lc.llama_adapter_lora_init(self.model, str(gguf_lora).encode())
                if not handle:
                    raise RolecraftError(f"llama.cpp refused the LoRA adapter {gguf_lora}", "retrain the adapter on this base model")
                self._adapters[gguf_lora] = handle
            return self._adapters[gguf_lora]
