"""Means with 95 % bootstrap intervals, and paired differences between two agents on the same questions.

A percentile bootstrap over questions (seeded, so a report is reproducible): with a handful of probes
per character, intervals are wide, and a difference whose interval contains 0 is reported as not
significant rather than as a win.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

RESAMPLES = 2000


class Estimate(BaseModel):
    mean: float
    low: float  # 2.5th percentile of the bootstrap means
    high: float  # 97.5th percentile
    n: int

    @property
    def significant(self) -> bool:
        """For a difference: the interval excludes 0."""
        return self.low > 0 or self.high < 0

    def text(self, signed: bool = False, digits: int = 2) -> str:
        f = f"{{:{'+' if signed else ''}.{digits}f}}"
        return f"{f.format(self.mean)} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap(values: Sequence[float], seed: int = 0) -> Estimate | None:
    """The mean of `values` with its 95 % percentile-bootstrap interval (None for no values)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(RESAMPLES, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(mean=float(data.mean()), low=float(low), high=float(high), n=int(data.size))


def paired(a: Sequence[float], b: Sequence[float], seed: int = 0) -> Estimate | None:
    """a − b on the same questions (pairs in order), with the interval of the mean difference."""
    if len(a) != len(b):
        raise ValueError("paired values need the same questions on both sides")
    return bootstrap([x - y for x, y in zip(a, b)], seed)
