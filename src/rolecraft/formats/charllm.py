"""Character-LLM's prompted text format, shared by training rows and the agent's inference prompt.

    I want you to act like Ludwig van Beethoven. ...          ← meta prompt (full name)
    Location: Theater an der Wien - Evening                     ← scene location
    Status: The hall is full; Beethoven stands by the piano.   ← the script's background
    ...
    Karl (speaking): Uncle, the hall is full!<|eot|>
    Beethoven (thinking): The orchestra is not ready.<|eot|>
    Beethoven (speaking): Then let them wait.<|eot|>

Consecutive turns of one speaker with one action are merged; protective scenes get a neutral location
and status (the reference's "A room" / "{name} is chatting with a person."). Speakers keep the name
the script gives them ("Ludwig van Beethoven" stays so); `is_target` finds the character's turns
under any of its names. Every function here is
the single definition of its piece of text: `formats.sft` renders training rows with them, the
training chat template is checked against them, and `agent.charllm` builds its prompts with them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rolecraft.character import Character
from rolecraft.formats.experience import Experience, Turn, as_action

EOT = "<|eot|>"
NEUTRAL_LOCATION = "A room"
META_PROMPT = (
    "I want you to act like {character}. I want you to respond and answer like {character}, using the tone, "
    "manner and vocabulary {character} would use. You must know all of the knowledge of {character}. \n\n"
    "The status of you is as follows:\nLocation: {location}\nStatus: {status}\n\n"
    "The interactions are as follows:"
)
_META = re.compile(
    r"^I want you to act like (?P<character>.+?)\. I want you to respond and answer like (?P=character),.*?"
    r"\nLocation: (?P<location>.*?)\nStatus: (?P<status>.*?)\n\n"
    r"The interactions are as follows:\s*$",
    re.DOTALL,
)
_TURN = re.compile(r"^(?P<role>[^\n()]+?) \((?P<action>[^)\n]*)\): ?(?P<content>.*)$", re.DOTALL)


def target_aliases(character: Character) -> set[str]:
    """The spellings a script uses for the target: full name, short name, first name (lower case)."""
    names = {character.full_name, character.short_name, character.full_name.split()[0] if character.full_name else ""}
    return {n.strip().lower() for n in names if n.strip()}


def is_target(role: str, character: Character) -> bool:
    return role.strip().lower() in target_aliases(character)


def neutral_status(character: Character) -> str:
    return f"{character.name} is chatting with a person."


def meta_prompt(character: Character, location: str, status: str) -> str:
    return META_PROMPT.format(character=character.full_name, location=location, status=status)


def scene_of(experience: Experience, character: Character) -> tuple[str, str]:
    """(location, status) of an experience; protective ones get the neutral pair."""
    if experience.protective:
        return NEUTRAL_LOCATION, neutral_status(character)
    return experience.location, experience.background


def merge_turns(turns: Sequence[Turn]) -> list[Turn]:
    """Join consecutive turns of the same speaker and action (one line each, as the reference does)."""
    merged: list[Turn] = []
    for t in turns:
        if merged and merged[-1].role == t.role and merged[-1].action == t.action:
            merged[-1] = merged[-1].model_copy(update={"content": f"{merged[-1].content}\n{t.content}"})
        else:
            merged.append(t)
    return merged


def render_turn(turn: Turn) -> str:
    """`Role (action): content` without the end-of-turn marker."""
    return f"{turn.role} ({turn.action}): {turn.content}"


def prompt_text(character: Character, location: str, status: str) -> str:
    """The meta prompt plus the blank line that precedes the interactions."""
    return meta_prompt(character, location, status) + "\n\n"


def interactions_text(turns: Sequence[Turn]) -> str:
    """Rendered turns, each ended with EOT and a newline (the last one too, so a next turn can follow)."""
    return "".join(f"{render_turn(t)}{EOT}\n" for t in turns)


def experience_text(character: Character, experience: Experience) -> tuple[str, str]:
    """(prompt, output) of one experience in the reference's `prompted_*.jsonl` shape."""
    location, status = scene_of(experience, character)
    turns = merge_turns(experience.dialogue)
    return prompt_text(character, location, status), interactions_text(turns).removesuffix("\n")


def parse_meta_prompt(prompt: str) -> tuple[str, str, str] | None:
    """(full name, location, status) from a rendered meta prompt, or None when it is not one."""
    m = _META.match(prompt.strip("\n"))
    return (m["character"], m["location"], m["status"]) if m else None


def parse_interactions(text: str) -> tuple[list[Turn], int]:
    """(turns, pieces that are not a turn) from `Role (action): content<|eot|>` text. Contents are kept
    exactly as written, so rendering the turns again gives the same text."""
    turns, malformed = [], 0
    pieces = text.split(EOT)
    if pieces and not pieces[-1].strip():
        pieces.pop()  # the text after the last marker
    for i, piece in enumerate(pieces):
        m = _TURN.match(piece.removeprefix("\n") if i else piece)
        if m and m["content"].strip():
            turns.append(Turn(role=m["role"].strip(), action=as_action(m["action"]), content=m["content"]))
        else:
            malformed += 1
    return turns, malformed


def text_chat_template(train_roles: Sequence[str] = ("assistant",)) -> str:
    """A chat template that renders messages (system = meta prompt, then one message per turn) as the
    prompted text above, with `{% generation %}` around the messages of `train_roles` so TRL's
    assistant-only loss masks everything else. Tested to render exactly like `experience_text`."""
    marked = " or ".join(f"m['role'] == '{r}'" for r in train_roles) or "false"
    # Newlines go through expressions: transformers compiles templates with trim_blocks.
    return (
        "{% for m in messages %}"
        "{% if m['role'] == 'system' %}{{ m['content'] + '\\n\\n' }}"
        f"{{% elif {marked} %}}{{% generation %}}{{{{ m['content'] + '{EOT}' }}}}{{% endgeneration %}}{{{{ '\\n' }}}}"
        f"{{% else %}}{{{{ m['content'] + '{EOT}\\n' }}}}"
        "{% endif %}{% endfor %}"
    )
