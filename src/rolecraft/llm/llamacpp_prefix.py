"""Which prompt tokens the llama.cpp engine need not read again: what each slot's KV cache holds.

A slot keeps the tokens of its last sequence when that ends. A new request goes to the free slot whose
cache shares the longest prefix with its prompt, or, when a running sequence shares at least
`WORTH_COPYING` more, gets a copy of that sequence's cache (the engine copies the whole KV stream, then
cuts it). At least the prompt's last two tokens are always read: the last one's logits give the first
token, and a read of one token alone would take llama.cpp's one-query attention kernel, which rounds
differently from the many-query kernel a cold read of the whole prompt takes (the KV cache is F16):
the same request would then draw other tokens when its prompt was cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Prompt tokens a sequence must share with a running one before that one's whole KV stream is copied
# (tens of MB: about what reading a few tokens costs).
WORTH_COPYING = 32


class SlotCaches:
    def __init__(self, slots: int):
        self.tokens: list[list[int]] = [[] for _ in range(slots)]  # what each slot's KV cache holds

    def clear(self) -> None:
        self.tokens = [[] for _ in self.tokens]

    def place(self, prompt: list[int], busy: Iterable[int], reading: Mapping[int, list[int]]) -> tuple[int, int, int]:
        """(free slot, slot to copy from or -1, prompt tokens already cached there). `busy`: slots with
        a running sequence; `reading`: slot → prompt of those admitted this step (read before this one)."""
        busy = set(busy)

        def held(s: int) -> int:
            return usable(reading.get(s, self.tokens[s]), prompt)

        slot = max((s for s in range(len(self.tokens)) if s not in busy), key=held)  # lowest of equals
        source = max(sorted(busy), key=held, default=-1)
        if source >= 0 and held(source) >= held(slot) + WORTH_COPYING:
            return slot, source, held(source)
        return slot, -1, held(slot)


def usable(cached: list[int], prompt: list[int]) -> int:
    """Tokens of `prompt` that `cached` holds: their shared prefix, short of the prompt's last two tokens."""
    n = min(len(cached), len(prompt) - 2)
    return max(0, next((i for i in range(n) if cached[i] != prompt[i]), n))
