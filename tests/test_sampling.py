"""The token chooser that the llama.cpp backend samples with: every SamplingParams field, on plain numpy."""

from __future__ import annotations

import numpy as np
import pytest

from rolecraft.llm.base import SamplingParams
from rolecraft.llm.sampling import TokenChooser, unpack_mask

VOCAB = 1000


@pytest.fixture(scope="module")
def logits() -> np.ndarray:
    rng = np.random.default_rng(0)
    row = rng.normal(0, 2, VOCAB).astype(np.float32)
    row[[7, 8, 9]] = [9.0, 8.5, 8.0]  # a clear best, second and third
    return row


def draws(params: SamplingParams, logits, n=300, seed=1, prompt=()):
    chooser = TokenChooser(params, list(prompt), VOCAB, seed)
    return [chooser.choose(logits).token for _ in range(n)]


def test_greedy_takes_the_best_and_truncating_samplers_keep_only_it(logits):
    assert TokenChooser(SamplingParams(temperature=0), [], VOCAB, 0).choose(logits).token == 7
    for narrow in (SamplingParams(top_k=1), SamplingParams(top_p=0.01), SamplingParams(min_p=0.999)):
        assert set(draws(narrow, logits, 50)) == {7}


def test_sampling_follows_the_distribution_and_repeats_for_a_seed(logits):
    picks = draws(SamplingParams(temperature=1.0), logits, 3000)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    for token in (7, 8, 9):
        assert abs(picks.count(token) / 3000 - probs[token]) < 0.04
    assert picks == draws(SamplingParams(temperature=1.0), logits, 3000)
    assert picks != draws(SamplingParams(temperature=1.0), logits, 3000, seed=2)


def test_top_k_and_top_p_limit_the_candidates(logits):
    assert set(draws(SamplingParams(top_k=2, temperature=1.5), logits)) <= {7, 8}
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    nucleus = set(np.argsort(-probs)[: int(np.searchsorted(np.cumsum(np.sort(probs)[::-1]), 0.9)) + 1])
    assert set(draws(SamplingParams(top_p=0.9, temperature=1.0), logits, 1000)) <= nucleus


def test_logit_bias_bans_and_boosts(logits):
    banned = SamplingParams(temperature=0, logit_bias={7: -100, 8: -100})
    assert TokenChooser(banned, [], VOCAB, 0).choose(logits).token == 9
    boosted = SamplingParams(temperature=0, logit_bias={500: 30.0})
    assert TokenChooser(boosted, [], VOCAB, 0).choose(logits).token == 500
    assert 7 not in draws(SamplingParams(temperature=2.0, logit_bias={7: -100}), logits, 1000)


def test_penalties_push_away_from_seen_tokens(logits):
    # repetition_penalty covers the prompt too; the OpenAI penalties only the reply.
    assert TokenChooser(SamplingParams(temperature=0, repetition_penalty=2.0), [7], VOCAB, 0).choose(logits).token == 8
    assert TokenChooser(SamplingParams(temperature=0, presence_penalty=2.0), [7], VOCAB, 0).choose(logits).token == 7
    chooser = TokenChooser(SamplingParams(temperature=0, frequency_penalty=0.4), [], VOCAB, 0)
    picked = []
    for _ in range(4):
        picked.append(chooser.choose(logits).token)
        chooser.accept(picked[-1])
    assert picked == [7, 7, 8, 7]  # 9.0 → 8.6 → 8.2 < 8.5 for token 8, then 8.5 → 8.1 < 8.2


def test_logprobs_describe_the_choice_and_the_mask_is_obeyed(logits):
    allowed = np.zeros(VOCAB, dtype=bool)
    allowed[[8, 9, 500]] = True
    choice = TokenChooser(SamplingParams(temperature=0, logprobs=3), [], VOCAB, 0).choose(logits, allowed)
    assert choice.token == 8
    assert [t for t, _ in choice.top] == [8, 9, 500]
    assert choice.logprob == choice.top[0][1] < 0
    assert abs(sum(np.exp(lp) for _, lp in choice.top) - 1.0) < 1e-5  # the mass is on the allowed tokens


def test_bitmask_unpacks_least_significant_bit_first():
    bits = np.zeros(2, dtype=np.int32)
    bits[0] = 0b101
    bits[1] = 1 << 3
    assert np.flatnonzero(unpack_mask(bits, 40)).tolist() == [0, 2, 35]
