"""The checks every generated item passes before it is used, each returning the reason it fails (or
None). A small teacher is usually wrong: it invents names, echoes its prompt, answers in the third
person, writes a "question" that gives its own answer away. Steps sample several candidates and keep
the first that passes; what fails is counted by these reasons.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rolecraft.encoder import embed
from rolecraft.language import en

_WORDS = re.compile(r"[^\W_]+", re.UNICODE)
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|I'd|I'll|(?i:me|my|mine|myself|we|our|us))\b")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(text)]


def hallucinated(text: str, allowed: set[str]) -> list[str]:
    """Names and numbers in `text` that the allowed vocabulary (the profile's, `en.vocabulary`) lacks."""
    return sorted(v for v in en.vocabulary(text) if v not in allowed)


def carries(text: str, keys: Sequence[str], any_key: bool = True) -> bool:
    """Does the text say the key(s)? Case-insensitive; a number may be said in digits or in words."""
    low = text.lower()

    def says(key: str) -> bool:
        k = key.lower()
        alternatives = {k, str(en.NUMBER_WORDS[k])} if k in en.NUMBER_WORDS else {k}
        alternatives |= {w for w, n in en.NUMBER_WORDS.items() if k == str(n)}
        return any(re.search(rf"(?<!\w){re.escape(a)}(?!\w)", low) for a in alternatives)

    found = [says(k) for k in keys]
    return any(found) if any_key else all(found)


def question_problem(question: str, keys: Sequence[str], statement: str = "") -> str | None:
    """A question asks something, does not give its own answer away and (given its statement) is about
    it: it shares at least one content word with the statement."""
    q = question.strip()
    if not q.endswith("?"):
        return "not_a_question"
    if not 3 <= len(q.split()) <= 30:
        return "question_length"
    if keys and carries(q, keys):
        return "question_contains_answer"
    if statement and not content_words(q) & content_words(statement):
        return "unrelated"
    return None


def content_words(text: str) -> set[str]:
    """Words of four letters or more, crudely stemmed, so "lighthouse"/"lighthouses" meet."""
    return {w.rstrip("s") for w in words(text) if len(w) >= 4 and w not in en.FUNCTION_WORDS}


def echo(text: str, prompt: str, threshold: float = 0.8) -> bool:
    """The text mostly repeats the prompt: its words are (almost) all the prompt's, in a long enough run."""
    mine, theirs = words(text), set(words(prompt))
    return len(mine) >= 3 and sum(w in theirs for w in mine) / len(mine) >= threshold


MAX_REPLY_WORDS = 45


def shape_problem(reply: str) -> str | None:
    """A trained reply is a finished one or two sentences: a small teacher rambles, or stops mid-word
    at its token limit."""
    if len(reply.split()) < 3:
        return "too_short"
    if reply[-1] not in ".!?\"'”)":
        return "truncated"
    if len(reply.split()) > MAX_REPLY_WORDS or len(re.findall(r"[.!?](?:\s|$)", reply)) > 2:
        return "rambles"
    return None


def voice_problem(reply: str, question: str, names: Sequence[str]) -> str | None:
    """The character speaks as themself (I, my), not of themself by name, and does not parrot the question."""
    if not _FIRST_PERSON.search(reply):
        return "not_first_person"
    if any(re.match(rf"\s*{re.escape(n)}\b", reply) for n in names if n):
        return "third_person"
    if echo(reply, question):
        return "echo"
    return None


def claims_to_be(answer: str, key: str) -> bool:
    """The answer says the character *is* the person the key names: "I am Edmund Voss", "I'm your
    younger brother - Edmund Voss" (a person word or nothing between; "the sister of Edmund" is fine)."""
    if not key[:1].isupper():
        return False
    for m in re.finditer(rf"\bI(?:'m| am)\b(.{{0,40}}?)\b{re.escape(key)}\b", answer):
        between = words(m.group(1))
        if not between or (any(w in en.PERSON_NOUNS for w in between) and between[-1] not in ("of", "to", "with")):
            return True
    return False


def answer_problem(answer: str, question: str, keys: Sequence[str], names: Sequence[str], allowed: set[str]) -> str | None:
    """A trained answer: in the character's voice, saying the key, adding no name or number of its own."""
    a = answer.strip()
    if problem := shape_problem(a):
        return problem
    if keys and not carries(a, keys):
        return "missing_key"
    if any(claims_to_be(a, k) for k in keys):
        return "claims_anothers_name"  # "I am your younger brother - Edmund Voss."
    if problem := voice_problem(a, question, names):
        return problem
    if hallucinated(a, allowed | set(words(question))):
        return "invented_name_or_number"
    return None


class NearDuplicates:
    """Embedding similarity (the embedded all-MiniLM-L6-v2) between short texts: a question that is a
    paraphrase of a held-out probe is not trained on, and one already kept is not kept twice."""

    def __init__(self, threshold: float = 0.9, encoder: str | Path | None = None):
        self.threshold = threshold
        self.encoder_path = encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return embed(texts, self.encoder_path)

    def near(self, texts: Sequence[str], others: Sequence[str]) -> list[bool]:
        """For each text, whether one of `others` says nearly the same."""
        if not texts or not others:
            return [False] * len(texts)
        return list((self.embed(texts) @ self.embed(others).T).max(axis=1) >= self.threshold)
