"""Character-LLM's judging protocol exactly as its scorer runs it (`--protocol reference`).

rolecraft's own protocol (judges.CharacterLLM) judges the whole reply, grounded in the facts most
related to the conversation, and asks for a JSON verdict. The reference scorer
(`run_api_score_single.py` / `run_api_score_turns.py` in choosewhatulike/trainable-agents) differs,
and this module does what it does:

- the judge prompt is the paper's `prompt_score_llm_<aspect>.txt`, filled with the short name, the
  profile's *first* paragraph, the interview scene and the interactions;
- single-turn: the interaction is `Man: <question>` and `<Name>: <reply>`, where the reply is the first
  "(speaking)" item, cut at its first blank line, with `*actions*` removed;
- multi-turn: one `<Speaker>: <content>` line per turn whose first item is spoken (transcripts.py
  reads published results that way under this protocol);
- the judge gets the scorer's system message, answers in free text at temperature 0 with up to 512
  tokens, and the score is the last digit that follows a space in its answer.

The texts (prompt files, the scene's location and status, the system message) are read from the
user's copy of the paper's repository; rolecraft does not contain them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.eval.judges import Case, Rubric
from rolecraft.eval.records import INTERVIEWER, Kind, Transcript
from rolecraft.formats.paper_files import assigned_template, find_file, keyword_template
from rolecraft.llm import Message

ASPECTS = {  # rolecraft's dimension → the paper's prompt file
    "memorization": "memory",
    "values": "values",
    "personality": "personality",
    "hallucination": "hallucination",
    "stability": "stability",
}
PROMPTS = ("data", "seed_data", "prompts")
SCORER = {"single": "run_api_score_single.py", "multi": "run_api_score_turns.py"}
JUDGE_TOKENS = 512
_ACTION = re.compile(r"\*.*?\*")
_SCORE = re.compile(r"\s\d")


def first_paragraph_reply(reply: str) -> str:
    """The reply as the reference judges it: its first paragraph, `*actions*` removed."""
    return _ACTION.sub("", reply.split("\n\n")[0])


def read_reference_score(text: str) -> float | None:
    """The reference's reading of a verdict: the last digit preceded by whitespace, whatever its value."""
    found = _SCORE.findall(text)
    return float(found[-1]) if found else None


@dataclass(frozen=True)
class Scene:
    location: str
    status: str  # a template with {name}
    system: str


class ReferenceCharacterLLM(Rubric):
    """The reference scorer's prompt, parsing and settings, read from the user's copy of the paper."""

    name = "character-llm"
    scale = (1.0, 7.0)
    verdict = ""  # free text, as the paper's judge answered
    max_tokens = JUDGE_TOKENS

    def __init__(self, prompts: dict[str, str], scenes: dict[Kind, Scene], source: Path):
        self.prompts, self.scenes, self.source = prompts, scenes, source

    @classmethod
    def load(cls, root: str | Path) -> ReferenceCharacterLLM:
        """From a copy of choosewhatulike/trainable-agents: its root (scorer scripts and prompt files),
        or, for the prompts, its `data/seed_data/prompts` folder next to the scripts."""
        root = Path(root)
        if not root.is_dir():
            raise RolecraftError(f"{root} is not a folder", "pass your copy of choosewhatulike/trainable-agents")
        prompts = {dim: find_file(root, f"prompt_score_llm_{aspect}.txt", "/".join(PROMPTS)).read_text(encoding="utf-8").strip()
                   for dim, aspect in ASPECTS.items()}
        scenes = {}
        for kind, script in SCORER.items():
            path = find_file(root, script, "../../..")
            scenes[kind] = Scene(
                location=assigned_template(path, "loc_time").format(),
                status=assigned_template(path, "status"),
                system=keyword_template(path, "decoder_for_openai", "sys_prompt").format(),
            )
        return cls(prompts, scenes, root)

    def dimensions(self, kind: Kind) -> list[str]:
        dims = ["memorization", "values", "personality", "hallucination"]
        return dims + ["stability"] if kind == "multi" else dims

    def scene(self, name: str, kind: Kind = "single") -> tuple[str, str]:
        """(location, status) of the interview scene for the character called `name`."""
        scene = self.scenes[kind if kind in self.scenes else "single"]
        return scene.location, scene.status.format(name=name)

    def interactions(self, case: Case) -> str:
        if case.kind == "single":
            return f"{INTERVIEWER}: {case.question()}\n{case.name}: {first_paragraph_reply(case.answer())}"
        return case.text()

    def prompt(self, case: Case, dimension: str) -> str:
        location, status = self.scene(case.name, case.kind)
        return self.prompts[dimension].format(
            agent_name=case.name, agent_context=case.profile, loc_time=location, status=status,
            interactions=self.interactions(case),
        )

    def messages(self, case: Case, dimension: str) -> list[Message]:
        system = self.scenes[case.kind if case.kind in self.scenes else "single"].system
        return [Message(role="system", content=system), Message(role="user", content=self.prompt(case, dimension))]

    def read(self, text: str, case: Case) -> float | None:
        return read_reference_score(text)


def reference_jobs(transcripts: list[Transcript], character: Character,
                   rubric: ReferenceCharacterLLM) -> list[tuple[Case, Rubric, str]]:
    """The paper's four (single-turn) or five (multi-turn) aspects per transcript, grounded in the
    profile's first paragraph; the paper judged no refusal of knowledge-boundary probes."""
    context = next(iter(character.knowledge()), "")
    jobs: list[tuple[Case, Rubric, str]] = []
    for t in transcripts:
        case = Case(agent=t.agent, item=t.id, kind=t.kind, topic_id=t.question.topic_id, probe=t.question.probe,
                    name=character.name, profile=context, dialogue=t.turns)
        jobs += [(case, rubric, d) for d in rubric.dimensions(t.kind)]
    return jobs


def reference_rubric(protocol: str, copy: str | Path | None) -> ReferenceCharacterLLM | None:
    """The reference rubric when `protocol` is "reference" (read from `copy`), else None."""
    if protocol != "reference":
        return None
    if copy is None:
        raise RolecraftError(
            "the reference protocol needs the paper's prompt files",
            "pass --reference PATH: your copy of choosewhatulike/trainable-agents (its root)",
        )
    return ReferenceCharacterLLM.load(copy)
