"""Stop strings: cut a finished text at the first one, or hold back a streamed tail that may begin one.

Shared by the local backends (hf:, llamacpp:), which both see text token by token.
"""

from __future__ import annotations


def cut_at_stop(text: str, stops: list[str]) -> str:
    cuts = [i for s in stops if s and (i := text.find(s)) >= 0]
    return text[: min(cuts)] if cuts else text


class StopHold:
    """Streams text up to the first stop string, holding back a tail that may still begin one."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.buffer = ""
        self.stopped = False

    def push(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.buffer += piece
        cuts = [i for s in self.stops if (i := self.buffer.find(s)) >= 0]
        if cuts:
            self.stopped = True
            out, self.buffer = self.buffer[: min(cuts)], ""
            return out
        keep = max((n for s in self.stops for n in range(1, len(s)) if self.buffer.endswith(s[:n])), default=0)
        out, self.buffer = self.buffer[: len(self.buffer) - keep], self.buffer[len(self.buffer) - keep :]
        return out

    def flush(self) -> str:
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        return out
