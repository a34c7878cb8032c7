"""The chat-style prompt: a persona system message built from the card, then the newest turns that fit.

The agent serves with these, and the chat training rows (`formats.sft`) render their system prompt
with `chat_system_prompt` too, so a trained character sees at serving time the prompt it was trained
on. `creator_notes` are not a Character field, so they cannot reach this prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rolecraft.character import DEFAULT_USER, Character
from rolecraft.llm.base import Message

DEFAULT_SYSTEM = (
    "You are {full_name}. Stay in character as {name}: speak with {name}'s tone, manner and vocabulary, "
    "and know only what {name} would know."
)
_START = re.compile(r"^\s*<START>\s*$", re.MULTILINE | re.IGNORECASE)
_ORIGINAL = re.compile(r"\{\{original\}\}", re.IGNORECASE)  # as SillyTavern's macros: any case


def chat_system_prompt(
    character: Character,
    user: str = DEFAULT_USER,
    facts: Sequence[str] = (),
    extra: Sequence[str] = (),
    profile_chars: int = 0,
) -> str:
    """The persona system prompt. `facts` are retrieved persona facts; `extra` are the client's own
    system messages (kept, after the persona); `profile_chars` > 0 puts the profile paragraphs that fit
    in that many characters into the prompt (APC's long-context agent) instead of the short description."""
    c = character
    default = DEFAULT_SYSTEM.format(full_name=c.full_name, name=c.name)
    # Card V2: a card's system_prompt replaces the default; `{{original}}` inside it stands for the default.
    head = _ORIGINAL.sub(lambda _: default, c.expand(c.system_prompt, user)) if c.system_prompt.strip() else default
    parts = [head]
    if profile_chars > 0:
        parts += _fitting(c.knowledge(user), profile_chars)
    elif c.description:
        parts.append(c.expand(c.description, user))
    if c.personality:
        parts.append(f"{c.name}'s personality: {c.expand(c.personality, user)}")
    if c.scenario:
        parts.append(f"Scenario: {c.expand(c.scenario, user)}")
    if c.examples.strip():
        examples = _START.sub("", c.expand(c.examples, user)).strip()
        parts.append(f"Examples of how {c.name} talks:\n{examples}")
    if facts:
        parts.append(f"Facts about {c.name}:\n" + "\n".join(f"- {f}" for f in facts))
    parts += [e for e in extra if e.strip()]
    return "\n\n".join(p.strip() for p in parts if p.strip())


def post_history_instructions(character: Character, user: str = DEFAULT_USER) -> str:
    # `{{original}}` would stand for a front end's own default, which rolecraft does not have.
    return _ORIGINAL.sub("", character.expand(character.post_history_instructions, user)).strip()


def fit_history(turns: Sequence[Message], budget: int) -> list[Message]:
    """The newest turns whose text fits in `budget` characters; the oldest are dropped first. The
    newest turn is always kept, cut from the front if it alone is longer than the budget."""
    kept: list[Message] = []
    for m in reversed(turns):
        if len(m.content) > budget:
            if not kept:
                kept.append(m.model_copy(update={"content": m.content[len(m.content) - max(budget, 0) :]}))
            break
        budget -= len(m.content)
        kept.append(m)
    return kept[::-1]


def with_instructions(turns: list[Message], instructions: str) -> list[Message]:
    """Attach post-history instructions to the last user turn. A late system message would be the
    literal reading of the card spec, but many chat templates (Gemma, Mistral) reject one."""
    if not instructions:
        return turns
    for i in range(len(turns) - 1, -1, -1):
        if turns[i].role == "user":
            last = turns[i].model_copy(update={"content": f"{turns[i].content}\n\n{instructions}"})
            return [*turns[:i], last, *turns[i + 1 :]]
    return [*turns, Message(role="user", content=instructions)]


def _fitting(paragraphs: Sequence[str], limit: int) -> list[str]:
    out: list[str] = []
    for p in paragraphs:
        if limit - len(p) < 0:
            break
        limit -= len(p)
        out.append(p)
    return out
