"""The hf backend's samplers and the per-token trace of what it generates.

`processors(params, ...)` builds the logits processors in the order vLLM and llama.cpp apply them:
penalties and logit_bias on the raw logits, then any constraint (a JSON schema), then temperature,
top_k, top_p and min_p. `generate()` is called with neutral settings of its own so it adds none twice.

`Tracer` is a stopping criterion, so it sees every new token right after it is chosen: it decodes the
token into text (rolecraft.llm.tokens), records its log-probability from the distribution
`LogprobRecorder` kept for that step, ends a row at EOS or its first stop string, and hands out text
that can no longer turn into a stop string, token by token, to a streaming consumer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    StoppingCriteria,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from rolecraft.llm.base import Completion, SamplingParams, TokenLogprob, TopLogprob
from rolecraft.llm.tokens import Detokenizer, clip_logprobs

BAN = -100.0  # a logit_bias this low bans the token outright (OpenAI: "-100 should result in a ban")
# What generate() gets, so that it builds no sampler of its own from the model's generation config.
NEUTRAL = {"repetition_penalty": 1.0}
NEUTRAL_SAMPLING = {**NEUTRAL, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": None}


def processors(
    params: SamplingParams, prompt_length: int, eos: int, constraint: Any = None, recorder: LogprobRecorder | None = None
) -> LogitsProcessorList:
    chain: list[Any] = [recorder] if recorder is not None else []  # first: it sees the raw logits
    if params.repetition_penalty != 1.0:
        chain.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.logit_bias or params.frequency_penalty or params.presence_penalty:
        chain.append(AdditivePenalties(params, prompt_length, eos))
    if constraint is not None:
        chain.append(constraint)
    if not params.greedy:
        if params.temperature != 1.0:
            chain.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k > 0:
            chain.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            chain.append(TopPLogitsWarper(params.top_p))
        if params.min_p > 0.0:
            chain.append(MinPLogitsWarper(params.min_p))
    return LogitsProcessorList(chain)


class AdditivePenalties(LogitsProcessor):
    """OpenAI's frequency and presence penalties (subtracted per occurrence / once, counting only the
    generated tokens, as vLLM does) and logit_bias (added; BAN or lower removes the token)."""

    def __init__(self, params: SamplingParams, prompt_length: int, eos: int):
        self.eos = eos
        self.bias = params.logit_bias
        self.frequency = params.frequency_penalty
        self.presence = params.presence_penalty
        self.prompt_length = prompt_length
        self._bias: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.frequency or self.presence:
            generated = input_ids[:, self.prompt_length :]
            counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
            scores = scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)
        if self.bias:
            if self._bias is None:
                self._bias = torch.zeros(scores.shape[-1], dtype=scores.dtype, device=scores.device)
                for token, value in self.bias.items():
                    if 0 <= token < scores.shape[-1]:
                        self._bias[token] = float("-inf") if value <= BAN else value
            scores = scores + self._bias
            if (dead := torch.isinf(scores).all(dim=-1)).any():  # every token banned: the reply ends here
                scores[dead, self.eos] = 0.0
        return scores


class LogprobRecorder(LogitsProcessor):
    """Keeps the log-probabilities of the step being decided (before any sampler changes them)."""

    last: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores


class _Row:
    """One sequence being generated: its text as token pieces, their log-probabilities, and how much
    of it was handed out already."""

    def __init__(self, decode: Callable[[list[int]], str], stops: Sequence[str], with_logprobs: bool):
        self.detokenizer = Detokenizer(decode)
        self.stops = stops
        self.text = ""
        self.pieces: list[str] = []
        self.logprobs: list[TokenLogprob] | None = [] if with_logprobs else None
        self.done = False
        self.stopped = False  # ended by EOS or a stop string (else by the token limit)
        self.cut: int | None = None  # where a stop string begins
        self.sent = 0  # pieces handed out
        self.sent_chars = 0

    def add(self, piece: str, entry: TokenLogprob | None) -> None:
        self.pieces.append(piece)
        if self.logprobs is not None and entry is not None:
            self.logprobs.append(entry)
        start = max(0, len(self.text) - max((len(s) for s in self.stops), default=0))
        self.text += piece
        found = [i for s in self.stops if (i := self.text.find(s, start)) >= 0]
        if found:
            self.cut, self.stopped = min(found), True
            self.finish()

    def finish(self) -> None:
        """No more tokens: text the detokenizer still held (an unfinished character) goes to the last one."""
        self.done = True
        if rest := self.detokenizer.flush():
            self.pieces[-1] += rest
            self.text += rest
            if self.logprobs:
                self.logprobs[-1] = self.logprobs[-1].model_copy(update={"token": self.logprobs[-1].token + rest})

    def take(self) -> tuple[str, list[TokenLogprob] | None] | None:
        """The pieces not handed out yet that are sure to be part of the reply: once the row is done,
        all up to its stop string; before, whole tokens that cannot begin a stop string."""
        count, end = self.sent, self.sent_chars
        if self.done:
            count, end = len(self.pieces), len(self.text) if self.cut is None else self.cut
        else:
            held = max((n for s in self.stops for n in range(1, len(s)) if self.text.endswith(s[:n])), default=0)
            while count < len(self.pieces) and end + len(self.pieces[count]) <= len(self.text) - held:
                end += len(self.pieces[count])
                count += 1
            while count > self.sent and not self.pieces[count - 1]:  # may still complete a character
                count -= 1
        if count == self.sent:
            return None
        logprobs = None if self.logprobs is None else clip_logprobs(self.logprobs[self.sent : count], 0, end - self.sent_chars)
        text = self.text[self.sent_chars : end]
        self.sent, self.sent_chars = count, end
        return text, logprobs

    def completion(self, prompt_tokens: int) -> Completion:
        text = self.text if self.cut is None else self.text[: self.cut]
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(self.pieces),
            finish_reason="stop" if self.stopped else "length",
            logprobs=None if self.logprobs is None else clip_logprobs(self.logprobs, 0, len(text)),
        )


class Tracer(StoppingCriteria):
    """Follows each row of a batch as generate() chooses its tokens; ends rows at EOS or a stop string,
    and all of them once `cancel` is set. `on_text(row, text, logprobs)` receives the reply as it
    becomes certain (streaming)."""

    def __init__(
        self,
        tokenizer: Any,
        rows: int,
        params: SamplingParams,
        eos: set[int],
        recorder: LogprobRecorder | None = None,
        on_text: Callable[[int, str, list[TokenLogprob] | None], None] | None = None,
        cancel: threading.Event | None = None,
    ):
        def decode(ids: list[int]) -> str:
            return tokenizer.decode(ids, skip_special_tokens=True)

        self.rows = [_Row(decode, [s for s in params.stop if s], recorder is not None) for _ in range(rows)]
        self.eos = eos
        self.top = params.logprobs or 0
        self.recorder = recorder
        self.on_text = on_text
        self.cancel = cancel

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        tokens = input_ids[:, -1].tolist()
        steps = self.recorder.last if self.recorder is not None else None
        top = steps.topk(self.top, dim=-1) if steps is not None and self.top else None
        for r, (row, token) in enumerate(zip(self.rows, tokens)):
            if row.done:
                continue
            if token in self.eos:
                row.stopped = True
                row.finish()
            else:
                alternatives = []
                if top is not None:
                    values, ids = top.values[r].tolist(), top.indices[r].tolist()
                    alternatives = [TopLogprob(token=row.detokenizer.peek(i), logprob=v) for v, i in zip(values, ids)]
                piece = row.detokenizer.push(token)
                entry = None if steps is None else TokenLogprob(token=piece, logprob=float(steps[r, token]), top_logprobs=alternatives)
                row.add(piece, entry)
            self._hand_out(r)
        cancelled = self.cancel is not None and self.cancel.is_set()
        return torch.tensor([row.done or cancelled for row in self.rows], device=input_ids.device)

    def completions(self, prompt_tokens: Sequence[int]) -> list[Completion]:
        """Each row's completion once generate() is over (and its last text handed to the stream)."""
        for r, row in enumerate(self.rows):
            if not row.done:
                row.finish()
                self._hand_out(r)
        return [row.completion(count) for row, count in zip(self.rows, prompt_tokens)]

    def _hand_out(self, r: int) -> None:
        taken = self.rows[r].take() if self.on_text is not None else None
        if taken is not None and (taken[0] or taken[1]):
            self.on_text(r, *taken)
