"""Stop strings in a stream: hold back the tokens whose text may still begin one (the llamacpp: backend;
hf: does the same per row in rolecraft.llm.hf_sampling, where the tokens are decoded)."""

from __future__ import annotations

from rolecraft.llm.base import TokenLogprob
from rolecraft.llm.tokens import clip_logprobs


class TokenHold:
    """Streams whole tokens up to the first stop string, holding back a tail that may still begin one.
    Every piece handed out is whole tokens with their log-probability entries (each spelling its part
    of the reply, rolecraft.llm.tokens), so a piece's text is its entries' tokens joined (a client's
    token view relies on it)."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.pieces: list[str] = []
        self.entries: list[TokenLogprob] = []  # one per piece when log-probabilities were asked for
        self.sent = 0  # tokens handed out
        self.sent_chars = 0

    def push(self, piece: str, entry: TokenLogprob | None) -> tuple[str, list[TokenLogprob]]:
        self.pieces.append(piece)
        if entry is not None:
            self.entries.append(entry)
        tail = "".join(self.pieces[self.sent :])
        if any(s in tail for s in self.stops):
            return "", []  # the reply ends here: finish() hands out what comes before the stop
        keep = max((n for s in self.stops for n in range(1, len(s)) if tail.endswith(s[:n])), default=0)
        count, length = self.sent, 0
        while count < len(self.pieces) and length + len(self.pieces[count]) <= len(tail) - keep:
            length += len(self.pieces[count])
            count += 1
        return self._take(count, length) if length else ("", [])

    def finish(self, final: str) -> tuple[str, list[TokenLogprob]]:
        """The rest of the finished reply `final` (cut at its stop string)."""
        return self._take(len(self.pieces), len(final) - self.sent_chars)

    def _take(self, count: int, length: int) -> tuple[str, list[TokenLogprob]]:
        text = "".join(self.pieces[self.sent : count])[:length]
        entries = clip_logprobs(self.entries[self.sent : count], 0, len(text)) if self.entries else []
        self.sent, self.sent_chars = count, self.sent_chars + len(text)
        return text, entries
