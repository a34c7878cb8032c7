"""The next token from one row of logits, as `SamplingParams` say: numpy, one chooser per sequence.

Runtimes that hand us raw logits (llama.cpp) choose tokens here, so every sampler means the same
thing for every request and a request's draws depend on nothing but its own seed:

1. `logit_bias` is added (a bias of -100 or less bans the token, as OpenAI documents), tokens outside
   the schema's mask are banned, and the penalties apply: `repetition_penalty` (transformers' rule:
   logits of tokens already in the prompt or the reply are divided by it, or multiplied when negative)
   and OpenAI's `frequency_penalty` / `presence_penalty` over the reply's tokens.
2. Log-probabilities are read here: the distribution the model was allowed to choose from.
3. Greedy takes the best token; otherwise temperature, top_k, top_p and min_p (transformers' order)
   shape the distribution and one uniform draw from the request's own generator picks the token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rolecraft.llm.base import SamplingParams

BANNED = -100.0  # a logit_bias at or below this bans the token outright
CDF_BLOCK = 256
NUCLEUS_PROBE = 1024


@dataclass
class Choice:
    token: int
    logprob: float | None = None  # of the chosen token, when log-probabilities were asked for
    top: list[tuple[int, float]] | None = None  # (token, logprob), best first


class TokenChooser:
    def __init__(self, params: SamplingParams, prompt: Sequence[int], n_vocab: int, seed: int):
        self.params = params
        self.n_vocab = n_vocab
        self.rng = np.random.Generator(np.random.PCG64(seed))
        biased = {t: b for t, b in params.logit_bias.items() if 0 <= t < n_vocab}
        self.bias_ids = np.fromiter(biased, dtype=np.int64, count=len(biased))
        self.bias = np.array([-np.inf if b <= BANNED else b for b in biased.values()], dtype=np.float32)
        self.seen = dict.fromkeys(t for t in prompt if 0 <= t < n_vocab)  # prompt and reply tokens, in order
        self.counts: dict[int, int] = {}  # reply tokens, for the OpenAI penalties

    def accept(self, token: int) -> None:
        self.seen[token] = None
        self.counts[token] = self.counts.get(token, 0) + 1

    def choose(self, logits: np.ndarray, allowed: np.ndarray | None = None) -> Choice:
        """`logits`: the model's row (not modified); `allowed`: boolean mask of the schema, if any."""
        p = self.params
        x = np.array(logits[: self.n_vocab], dtype=np.float32)
        if len(self.bias_ids):
            x[self.bias_ids] += self.bias
        if allowed is not None:
            x = _masked(x, allowed)
        if p.repetition_penalty != 1.0 and self.seen:
            ids = np.fromiter(self.seen, dtype=np.int64, count=len(self.seen))
            x[ids] = np.where(x[ids] < 0, x[ids] * p.repetition_penalty, x[ids] / p.repetition_penalty)
        if (p.frequency_penalty or p.presence_penalty) and self.counts:
            ids = np.fromiter(self.counts, dtype=np.int64, count=len(self.counts))
            x[ids] -= p.frequency_penalty * np.fromiter(self.counts.values(), dtype=np.float32) + p.presence_penalty

        token = int(np.argmax(x)) if p.greedy else self._draw(x)
        if p.logprobs is None:
            return Choice(token)
        logp = x - _logsumexp(x)
        top = []
        if p.logprobs:
            best = np.argpartition(-logp, p.logprobs - 1)[: p.logprobs]
            best = best[np.lexsort((best, -logp[best]))]
            top = [(int(t), float(logp[t])) for t in best if np.isfinite(logp[t])]
        return Choice(token, float(logp[token]), top)

    def _draw(self, x: np.ndarray) -> int:
        p = self.params
        z = x / p.temperature
        if p.top_k and p.top_k < len(z):
            z[z < np.partition(z, -p.top_k)[-p.top_k]] = -np.inf
        probs = np.exp(z - z.max())
        if p.top_p < 1.0:
            probs = _nucleus(probs / probs.sum(), p.top_p)
        if p.min_p > 0.0:
            probs[probs < p.min_p * probs.max()] = 0.0
        return _inverse_cdf(probs, self.rng.random())


def _masked(x: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """`x` with the tokens outside `allowed` at -inf, touching whichever side is smaller."""
    if allowed.sum() * 2 < len(x):
        out = np.full_like(x, -np.inf)
        keep = np.flatnonzero(allowed)
        out[keep] = x[keep]
        return out
    x[np.flatnonzero(~allowed)] = -np.inf
    return x


def _inverse_cdf(weights: np.ndarray, u: float) -> int:
    """The token whose cumulative weight first exceeds u × the total: block sums first, then one
    block's running sum (a full-vocabulary cumulative sum costs ten times more)."""
    n = len(weights)
    padded = np.zeros(-(-n // CDF_BLOCK) * CDF_BLOCK, dtype=np.float64)
    padded[:n] = weights
    blocks = np.cumsum(padded.reshape(-1, CDF_BLOCK).sum(axis=1))
    target = u * blocks[-1]
    b = min(int(np.searchsorted(blocks, target, side="right")), len(blocks) - 1)
    inner = np.cumsum(padded[b * CDF_BLOCK : (b + 1) * CDF_BLOCK])
    i = min(int(np.searchsorted(inner, target - (blocks[b - 1] if b else 0.0), side="right")), CDF_BLOCK - 1)
    token = b * CDF_BLOCK + i
    if token >= n or weights[token] == 0.0:  # rounding ran past the weighted tokens: the last one before
        before = np.flatnonzero(weights[: token + 1])
        token = int(before[-1] if len(before) else np.flatnonzero(weights)[0])
    return token


def _nucleus(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the smallest set of best tokens whose mass reaches top_p (ties broken by token id).
    The best NUCLEUS_PROBE tokens usually hold it; only when they do not is everything sorted."""
    candidates = np.arange(len(probs))
    if len(probs) > NUCLEUS_PROBE:
        best = np.argpartition(-probs, NUCLEUS_PROBE)[:NUCLEUS_PROBE]
        if probs[best].sum() > top_p:
            candidates = best
    order = candidates[np.lexsort((candidates, -probs[candidates]))]
    mass = np.cumsum(probs[order])
    keep = order[: int(np.searchsorted(mass, top_p, side="left")) + 1]
    kept = np.zeros_like(probs)
    kept[keep] = probs[keep]
    return kept


def _logsumexp(x: np.ndarray) -> float:
    top = float(x.max())
    return top + float(np.log(np.exp(x - top).sum()))


def unpack_mask(bits: np.ndarray, n_vocab: int) -> np.ndarray:
    """A token bitmask (32 tokens per int32, least significant bit first) as booleans per token."""
    return np.unpackbits(bits.view(np.uint8), bitorder="little")[:n_vocab].astype(bool)
