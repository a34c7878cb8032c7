"""The records experience reconstruction passes between stages (Character-LLM, DESIGN §2.2).

    profile paragraph ─► Scene ─► Experience (a script: background + turns)
                   └──────────► Experience(protective=True)

Names follow the paper's released data where they can. One difference: Character-LLM's
`generated_*.json` call the script's own background paragraph `setting` and the scene description
`background`; here `setting` is the scene as the teacher was asked to write it and `background` is
the script's opening paragraph (positions, time, people), which becomes `Status:` in the meta prompt.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

Action = Literal["speaking", "thinking"]


def as_action(text: str) -> Action:
    """Anything about thinking is thinking; every other stage direction (whispering, ...) is speech."""
    return "thinking" if re.search(r"think|thought", text, re.IGNORECASE) else "speaking"


class Scene(BaseModel):
    """A short scene the teacher imagined from one profile paragraph."""

    id: str  # stable within a workspace, e.g. "s0007"
    type: str  # chat, debate, discussion, speech, ...
    location: str
    background: str  # what is going on and who is there, no details
    paragraph: int  # index into Character.knowledge()
    source: str  # the profile paragraph the scene came from


class Turn(BaseModel):
    role: str  # the speaker's name as written in the script
    action: Action = "speaking"
    content: str


class Experience(BaseModel):
    """One reconstructed experience: a scene played out as a script of turns."""

    id: str
    character: str  # the target character's short name (the only speaker who may think)
    type: str = ""
    location: str = ""
    setting: str = ""  # the scene description the script was written from
    background: str = ""  # the script's opening paragraph: positions, time, people (no feelings)
    dialogue: list[Turn] = Field(default_factory=list)
    source: str = ""  # scene id, paragraph id, or the imported file's source field
    protective: bool = False  # a visitor provokes the character about things they cannot know

    def words(self) -> int:
        return sum(len(t.content.split()) for t in self.dialogue)
