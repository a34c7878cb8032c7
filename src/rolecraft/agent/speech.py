"""From a model's raw reply to the character's speech: without surrounding whitespace and without the
character's own name in front ("Maren: I'm a keeper ..." → "I'm a keeper ..."), which small models
write because chat transcripts look like that. Front ends strip it too; we do not produce it.

The same `Speech` shapes a whole reply and a stream, so a streamed reply equals the whole one. A
stream's start is held back until it is certain not to be the name, and whitespace at its end until
more text follows. Log-probabilities are cut along with the text (rolecraft.llm.tokens).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rolecraft.llm.base import Completion, TokenLogprob
from rolecraft.llm.tokens import split_logprobs


class Speech:
    def __init__(self, names: Sequence[str]):
        names = sorted({n.strip() for n in names if n.strip()}, key=len, reverse=True)
        self.labels = [f"{n}:" for n in names]
        alternatives = "|".join(re.escape(n) for n in names)
        self.lead = re.compile(rf"\s*(?:(?:{alternatives})\s*:\s*)*" if names else r"\s*")
        self.text = ""
        self.logprobs: list[TokenLogprob] | None = None
        self.started = False  # the start is settled (name and leading whitespace dropped)

    def whole(self, completion: Completion) -> Completion:
        """A whole reply shaped at once."""
        first = self.push(completion)
        last = self.finish(completion)
        if first is None:
            return last
        logprobs = None if first.logprobs is None else [*first.logprobs, *(last.logprobs or [])]
        return last.model_copy(update={"text": first.text + last.text, "logprobs": logprobs})

    def push(self, chunk: Completion) -> Completion | None:
        """The part of the reply so far that is certain, or None while nothing new is."""
        self.text += chunk.text
        if chunk.logprobs is not None:
            self.logprobs = [*(self.logprobs or []), *chunk.logprobs]
        if not self.started:
            drop = self.lead.match(self.text).end()
            rest = self.text[drop:]
            if drop == len(self.text) or any(label.startswith(rest) for label in self.labels):
                return None  # still only whitespace and names, or the start of a name
            self._drop(drop)
            self.started = True
        return self._take(len(self.text.rstrip()))

    def finish(self, last: Completion) -> Completion:
        """The end: `last` (the stream's final chunk, with finish_reason and token counts) carrying
        what was held back, less trailing whitespace."""
        if not self.started:
            self._drop(self.lead.match(self.text).end())
        taken = self._take(len(self.text.rstrip()))
        text, logprobs = (taken.text, taken.logprobs) if taken else ("", [] if self.logprobs is not None else None)
        return last.model_copy(update={"text": text, "logprobs": logprobs})

    def _drop(self, n: int) -> None:
        self.text = self.text[n:]
        if self.logprobs is not None:
            self.logprobs = split_logprobs(self.logprobs, n)[1]

    def _take(self, n: int) -> Completion | None:
        if n == 0:
            return None
        text, self.text = self.text[:n], self.text[n:]
        logprobs = None
        if self.logprobs is not None:
            logprobs, self.logprobs = split_logprobs(self.logprobs, n)
        return Completion(text=text, logprobs=logprobs)
