"""Counts of discarded outputs by reason: every step that drops a row counts it here, never silently."""

from __future__ import annotations

from collections import Counter


class Rejections(Counter):
    def reject(self, reason: str, n: int = 1) -> None:
        if n:
            self[reason] += n

    def summary(self) -> str:
        return ", ".join(f"{reason}: {n}" for reason, n in self.most_common()) or "none"
