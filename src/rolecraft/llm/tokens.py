"""Text per generated token, so that log-probabilities and streamed pieces line up with a reply exactly.

A reply's text is the concatenation of its tokens' pieces (SillyTavern rebuilds a reply from the tokens
of its probabilities view). The bytes of a character split over several tokens belong to the token
that completes it; the tokens before it spell "". When a reply is cut (a stop string, a stripped name
prefix) the token that straddles the cut keeps only its part on each side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rolecraft.llm.base import TokenLogprob

INCOMPLETE = "\ufffd"  # what a decoder makes of the first bytes of a multi-byte character


class Detokenizer:
    """Incremental decoding over `decode(ids) -> str`. Each window starts a few tokens back so that
    tokenizers which drop a leading space at the start of a text (SentencePiece) decode it right."""

    def __init__(self, decode: Callable[[list[int]], str]):
        self.decode = decode
        self.ids: list[int] = []
        self.prefix = 0  # the window starts here
        self.read = 0  # tokens up to here have produced their text

    def peek(self, token: int) -> str:
        """The text `token` would add next (for alternatives in log-probabilities)."""
        piece = self._piece([*self.ids, token])
        return piece if piece is not None else self.decode([token])

    def push(self, token: int) -> str:
        """The text `token` adds; "" while it ends in an incomplete character."""
        self.ids.append(token)
        piece = self._piece(self.ids)
        if piece is None:
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return piece

    def flush(self) -> str:
        """Text still held at the end (bytes that never completed a character)."""
        before = self.decode(self.ids[self.prefix : self.read])
        after = self.decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return after[len(before) :] if len(after) > len(before) else ""

    def _piece(self, ids: list[int]) -> str | None:
        before = self.decode(ids[self.prefix : self.read])
        after = self.decode(ids[self.prefix :])
        if len(after) > len(before) and not after.endswith(INCOMPLETE):
            return after[len(before) :]
        return None


def split_logprobs(entries: Sequence[TokenLogprob], at: int) -> tuple[list[TokenLogprob], list[TokenLogprob]]:
    """Tokens before and after character `at` of the text they spell; one that straddles it is split."""
    left: list[TokenLogprob] = []
    right: list[TokenLogprob] = []
    pos = 0
    for entry in entries:
        end = pos + len(entry.token)
        if pos < at and end <= at:
            left.append(entry)
        elif pos >= at:  # an empty token at the cut is the start of a character that completes after it
            right.append(entry)
        else:
            cut = at - pos
            left.append(entry.model_copy(update={"token": entry.token[:cut]}))
            right.append(entry.model_copy(update={"token": entry.token[cut:]}))
        pos = end
    return left, right


def clip_logprobs(entries: Sequence[TokenLogprob], start: int, end: int | None = None) -> list[TokenLogprob]:
    """The tokens spelling text[start:end] of the text all of `entries` spell."""
    kept = split_logprobs(entries, start)[1]
    return kept if end is None else split_logprobs(kept, end - start)[0]
