"""English: the rules that construct what a small teacher cannot write, and the knowledge-boundary topics.

A 135M teacher cannot restate a fact in the first person or write a question for it, so these rules do:
every statement, answer and question they produce is a rewrite of a sentence of the profile itself,
and so carries no fact the profile does not.

- `text`: sentences, statements about the character, key spans, vocabulary
- `person`: the character's own voice (first person) and the user's (second person)
- `questions`: questions that ask for a statement's keys
- `boundary`: topics a character cannot know, leak and deflection checks
"""

from rolecraft.language.en import boundary
from rolecraft.language.en.person import PERSON_NOUNS, first_person, second_person
from rolecraft.language.en.questions import content_questions, echo_question, imperative, probe_questions
from rolecraft.language.en.text import (
    FUNCTION_WORDS,
    NUMBER_WORDS,
    key_spans,
    resolve,
    sentences,
    statements,
    vocabulary,
)

__all__ = ["FUNCTION_WORDS", "NUMBER_WORDS", "PERSON_NOUNS", "boundary", "content_questions", "echo_question", "first_person",
           "imperative", "key_spans", "probe_questions", "resolve", "second_person", "sentences", "statements",
           "vocabulary"]
