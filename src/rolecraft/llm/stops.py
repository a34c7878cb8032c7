"""Stop strings in a stream: hold back the tokens whose text may still begin one (the llamacpp: backend;
hf: does the same per row in rolecraft.llm.hf_sampling, where the tokens are decoded)."""

from __future__ import annotations

from rolecraft.llm.base import TokenLogprob


class TokenHold:
    """Streams whole tokens up to the first stop string, holding back a tail that may still begin one.
    Every piece handed out is whole tokens with their log-probability entries, each entry's token set to
    its piece of the text, so a piece's text is its entries' tokens joined (a client's token view
    relies on it)."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.pieces: list[str] = []
        self.entries: list[TokenLogprob | None] = []
        self.sent = 0  # tokens handed out

    def push(self, piece: str, entry: TokenLogprob | None) -> tuple[str, list[TokenLogprob]]:
        self.pieces.append(piece)
        self.entries.append(entry)
        tail = "".join(self.pieces[self.sent :])
        if any(s in tail for s in self.stops):
            return "", []  # the reply ends here: finish() hands out what comes before the stop
        keep = max((n for s in self.stops for n in range(1, len(s)) if tail.endswith(s[:n])), default=0)
        count, length = self.sent, 0
        while count < len(self.pieces) and length + len(self.pieces[count]) <= len(tail) - keep:
            length += len(self.pieces[count])
            count += 1
        return self._take(count, None) if length else ("", [])

    def finish(self, text_sent: int, final: str) -> tuple[str, list[TokenLogprob]]:
        """The rest of the reply `final` (cut at its stop string) after the `text_sent` characters."""
        return self._take(len(self.pieces), len(final) - text_sent)

    def _take(self, count: int, limit: int | None) -> tuple[str, list[TokenLogprob]]:
        text, entries = "", []
        for piece, entry in zip(self.pieces[self.sent : count], self.entries[self.sent : count]):
            if limit is not None:
                piece = piece[: max(0, limit - len(text))]
                if not piece and limit <= len(text):
                    break
            text += piece
            if entry is not None:
                entries.append(entry.model_copy(update={"token": piece}))
        self.sent = count
        return text, entries
