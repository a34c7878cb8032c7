"""The language-specific pieces of synthesis and evaluation, one small module per language.

Sentence splitting, pronoun resolution, key spans, first- and second-person rewriting and question
patterns (`en`), with the knowledge-boundary topics and their leak words (`en.boundary`). `for_character`
picks the module for a character's language; English is the only one so far.
"""

from __future__ import annotations

from types import ModuleType

from rolecraft.character import Character
from rolecraft.charset import language
from rolecraft.errors import RolecraftError
from rolecraft.language import en

MODULES: dict[str, ModuleType] = {"en": en}


def for_character(character: Character) -> ModuleType:
    lang = language(character)
    if lang not in MODULES:
        raise RolecraftError(f"no language module for '{lang}' yet ({character.full_name})",
                             f"use a character in one of: {', '.join(MODULES)}")
    return MODULES[lang]
