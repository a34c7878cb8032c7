"""A reply becomes the character's speech: no leading "Name:", no surrounding whitespace, the same whole
or streamed, with log-probabilities cut along with the text."""

from __future__ import annotations

import pytest

from rolecraft.agent.speech import Speech
from rolecraft.llm.base import Completion, TokenLogprob
from rolecraft.llm.tokens import Detokenizer, clip_logprobs, split_logprobs

NAMES = ["Maren", "Maren Holt"]


def tokens(*pieces: str) -> list[TokenLogprob]:
    return [TokenLogprob(token=p, logprob=-float(i)) for i, p in enumerate(pieces)]


def streamed(pieces: list[str], names=NAMES) -> tuple[str, list[TokenLogprob]]:
    speech, out, logs = Speech(names), [], []
    for piece, entry in zip(pieces, tokens(*pieces)):
        if (said := speech.push(Completion(text=piece, logprobs=[entry]))) is not None:
            out.append(said.text)
            logs += said.logprobs
    last = speech.finish(Completion(text="", finish_reason="length", completion_tokens=len(pieces)))
    assert last.finish_reason == "length" and last.completion_tokens == len(pieces)
    return "".join(out) + last.text, logs + last.logprobs


@pytest.mark.parametrize(
    ("pieces", "said"),
    [
        (["Mar", "en", ":", " I", "'m a", " keeper", ".\n"], "I'm a keeper."),
        ([" Maren Holt", ": ", "Maren:", " Hello"], "Hello"),  # full name, and the name twice
        (["Mar", "y", " said", " hi"], "Mary said hi"),  # looked like the name for a while
        (["Maren", " is", " here"], "Maren is here"),  # the name as a word, not a label
        (["\n", " ", "Hi", " there", " ", "\n"], "Hi there"),
        (["Maren", ":"], ""),
        (["Hello", ":", " Maren:", " x"], "Hello: Maren: x"),  # only a leading name goes
    ],
)
def test_a_leading_name_and_surrounding_whitespace_go_whole_or_streamed(pieces, said):
    text, logprobs = streamed(pieces)
    assert text == said and "".join(t.token for t in logprobs) == said
    whole = Speech(NAMES).whole(Completion(text="".join(pieces), logprobs=tokens(*pieces)))
    assert whole.text == said and "".join(t.token for t in whole.logprobs) == said


def test_nothing_is_held_once_the_start_is_settled():
    speech = Speech(NAMES)
    assert speech.push(Completion(text="Ma")) is None  # could still be "Maren:"
    assert speech.push(Completion(text="ybe")).text == "Maybe"
    assert speech.push(Completion(text=" so \n")).text == " so"  # trailing whitespace waits for more text
    assert speech.push(Completion(text="yes")).text == " \nyes"


def test_logprobs_are_split_where_the_text_is_cut():
    entries = tokens("Ma", "ren:", " Hi")
    left, right = split_logprobs(entries, 3)
    assert [t.token for t in left] == ["Ma", "r"] and [t.token for t in right] == ["en:", " Hi"]
    assert right[0].logprob == entries[1].logprob  # both halves keep the token's probability
    assert [t.token for t in clip_logprobs(entries, 7, 9)] == ["Hi"]
    # A token that spells nothing (the first bytes of a character) goes with the one that completes it.
    assert [t.token for t in split_logprobs(tokens("a", "", "é"), 1)[1]] == ["", "é"]


def test_the_detokenizer_gives_each_token_its_text_and_characters_whole():
    pieces = {1: b"caf", 2: b"\xc3", 3: b"\xa9", 4: b" ok"}

    def decode(ids):
        return b"".join(pieces[i] for i in ids).decode("utf-8", errors="replace")

    d = Detokenizer(decode)
    assert [d.push(i) for i in (1, 2, 3, 4)] == ["caf", "", "é", " ok"]
    assert d.peek(2) == "\ufffd"  # an alternative that would start a character
    cut = Detokenizer(decode)
    assert [cut.push(i) for i in (1, 2)] == ["caf", ""] and cut.flush() == "\ufffd"  # ended mid-character
