"""Ditto's WikiRoleEval judging exactly as its script does it (`eval wikirole --protocol reference`).

rolecraft's own Ditto rubrics (judges.py) ask in their own words for a JSON verdict. The reference
(`eval/call_openai_api_gpt4_eval.py` in OFA-Sys/Ditto) differs, and this module does what it does:

- the three prompts are Ditto's own, per language (read from the user's copy of that script);
- consistency: the judge must end with "The most suitable role is [X]" (Chinese: 最符合的角色为[X]); X
  must equal the role's label exactly; the score is the share of readable samples that name it, and
  0 when no sample can be read;
- rejection: an answer counts only if it is exactly "0" or "1"; the verdict is the most common
  answer, the first vote on a tie;
- knowledge: the integer on the answer's last line (a leading "Score: " removed), averaged;
- each judge call may answer in up to 2,048 tokens; Ditto's script samples 3 answers at
  temperature 0.2 (the command's defaults for `eval wikirole`).
"""

from __future__ import annotations

import re
from pathlib import Path

from rolecraft.eval.judges import Case, Rubric, majority
from rolecraft.formats.paper_files import assigned_literal, find_file

SCRIPT = "call_openai_api_gpt4_eval.py"
JUDGE_TOKENS = 2048
_PICK = {"en": re.compile(r"most suitable role is \[(.*)\]"), "zh": re.compile(r"最符合的角色为\[(.*)\]")}


def _lang(case: Case) -> str:
    return "zh" if case.lang == "zh" else "en"


class _DittoRubric(Rubric):
    verdict = ""  # free text, as Ditto's judge answered
    max_tokens = JUDGE_TOKENS

    def __init__(self, prompts: dict[str, str]):
        self.prompts = prompts


class ReferenceConsistency(_DittoRubric):
    name = "ditto-consistency"

    def prompt(self, case: Case, dimension: str) -> str:
        cands = "\n".join("- " + c for c in case.candidates)
        return self.prompts[_lang(case)].format(query=case.question(), answer=case.answer(), cands=cands)

    def read(self, text: str, case: Case) -> float | None:
        found = _PICK[_lang(case)].search(text)
        return None if found is None else float(found.group(1) == case.name)

    def combine(self, values: list[float], case: Case) -> tuple[float, float]:
        score = sum(values) / len(values) if values else 0.0  # Ditto: the mean of nothing is 0
        return score, score


class ReferenceRejection(_DittoRubric):
    name = "ditto-rejection"

    def prompt(self, case: Case, dimension: str) -> str:
        return self.prompts[_lang(case)].format(query=case.question(), answer=case.answer(), label=case.name)

    def read(self, text: str, case: Case) -> float | None:
        return float(text) if text in ("0", "1") else None

    def combine(self, values: list[float], case: Case) -> tuple[float | None, float | None]:
        if not values:  # Ditto's script stops here; rolecraft counts the answers as unreadable
            return None, None
        refused = majority(values)
        return refused, refused if case.label is None else float(refused == case.label)


class ReferenceKnowledge(_DittoRubric):
    name = "ditto-knowledge"
    scale = (1.0, 10.0)

    def prompt(self, case: Case, dimension: str) -> str:
        return self.prompts[_lang(case)].format(
            question=case.question(), answer=case.answer(), label=case.name, summary=case.profile,
            evidence=case.evidence,
        )

    def read(self, text: str, case: Case) -> float | None:
        try:
            return float(int(text.split("\n")[-1].replace("Score: ", "")))
        except ValueError:
            return None


def ditto_rubrics(root: str | Path) -> dict[str, Rubric]:
    """Ditto's three rubrics, their prompts read from a copy of OFA-Sys/Ditto (its root, its eval/
    folder, or the script itself)."""
    root = Path(root)
    script = root if root.is_file() else find_file(root, SCRIPT, "eval")
    rubrics: list[Rubric] = [
        ReferenceConsistency(assigned_literal(script, "role_consist_prompt")),
        ReferenceRejection(assigned_literal(script, "rejection_judgement_prompt")),
        ReferenceKnowledge(assigned_literal(script, "eval_prompt")),
    ]
    return {r.name: r for r in rubrics}
