"""The two questions behind APC's discriminators, asked of a teacher when it labels training data and
of an LLM when it serves as the discriminator itself (`faithfulness.judge`)."""

from __future__ import annotations

from rolecraft.llm.base import Message

SYSTEM = "You help build AI characters by judging and writing their replies."


def relevance_question(character: str, statement: str, query: str) -> list[Message]:
    return [
        Message(role="system", content=SYSTEM),
        Message(
            role="user",
            content=(
                f"Character: {character}\n\nPersona statement: {statement}\n\nUser utterance: {query}\n\n"
                f"Should a reply to this utterance include the information in the persona statement? "
                f'Answer only "yes" or "no".'
            ),
        ),
    ]


def nli_question(character: str, statement: str, query: str, response: str) -> list[Message]:
    return [
        Message(role="system", content=SYSTEM),
        Message(
            role="user",
            content=(
                "entailed: the response correctly follows the information in the persona statement;\n"
                "neutral: the response may be right but lacks the information in the persona statement;\n"
                "contradicted: the response contradicts the persona statement, at least in part.\n\n"
                f"Character: {character}\n\nPersona statement: {statement}\n\nUser utterance: {query}\n\n"
                f"Response: {response}\n\n"
                'Is the persona statement entailed, neutral or contradicted by the response? Answer only '
                '"entailed", "neutral" or "contradicted".'
            ),
        ),
    ]
