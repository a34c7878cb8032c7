"""Where the llama.cpp engine finds a new prompt's prefix already read (rolecraft.llm.llamacpp_prefix)."""

from __future__ import annotations

from rolecraft.llm.llamacpp_prefix import WORTH_COPYING, SlotCaches, usable


def test_the_last_two_prompt_tokens_are_always_read():
    assert usable([1, 2, 3], [1, 2, 3]) == 1
    assert usable([1, 2, 9], [1, 2, 3, 4]) == 2
    assert usable([1, 2, 3, 4], [1, 2, 3, 4]) == 2
    assert usable([], [5]) == 0 and usable([7], [5, 6]) == 0 and usable([5], [5]) == 0


def test_a_free_slot_with_the_longest_prefix_or_a_copy_of_a_running_one():
    persona = list(range(100, 100 + 2 * WORTH_COPYING))
    caches = SlotCaches(4)
    caches.tokens[1] = persona[:5]
    caches.tokens[2] = persona[:10]
    # free slots 1 and 2 hold short prefixes; nothing runs: slot 2, 10 tokens cached
    assert caches.place(persona + [1], busy=[], reading={}) == (2, -1, 10)
    # slot 3 is reading a prompt in this step that shares far more: copy it (all but our last two tokens)
    assert caches.place(persona + [2], busy=[3], reading={3: persona + [1]}) == (2, 3, len(persona) - 1)
    # a running sequence that shares too little more than a free slot is not worth a copy
    caches.tokens[0] = persona[: 10 + WORTH_COPYING - 1]
    assert caches.place(persona + [3], busy=[0], reading={}) == (2, -1, 10)
    caches.clear()
    assert caches.place(persona, busy=[1], reading={}) == (0, -1, 0)
