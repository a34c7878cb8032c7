"""The records of APC's persona-faithfulness data, field for field as the reference run writes them.

The reference (Peng & Shang, 2024) keeps each step as one JSON list per character: `Alice.json`
(statements), `Alice.query_relevant_to_statement.json`, `Alice.relevance.json`, `Alice.nli.json`,
`Alice.nli.v2.json` (relabelled NLI items) and `Alice.rag.dpo.json`. These models read those files
as they are and write rows of the same shape, so data moves both ways between rolecraft and the
reference code. In a workspace the same rows live one per line in `<stage>.jsonl`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ValidationError, field_validator

from rolecraft.errors import RolecraftError
from rolecraft.formats.paper_files import refuse_lfs_pointer
from rolecraft.llm.base import Message

NLILabel = Literal["entailed", "neutral", "contradicted"]
NLI_LABELS: tuple[NLILabel, ...] = ("contradicted", "neutral", "entailed")  # the classifier's column order
RELEVANCE_LABELS = ("no", "yes")

# Workspace stage names (`<stage>.jsonl`) and the reference file suffix each one mirrors.
STAGES = {
    "statements": "",
    "statement_queries": ".query_relevant_to_statement",
    "relevance": ".relevance",
    "nli": ".nli",
    "nli_labels": ".nli.v2",
    "preference": ".rag.dpo",
}

R = TypeVar("R", bound=BaseModel)


class StatementRecord(BaseModel):
    """One atomic persona statement and the passage (profile paragraph or lore entry) it came from."""

    character: str
    passage: str
    statement: str


class StatementQueries(BaseModel):
    """User utterances that can only be answered well with the statement."""

    statement: str
    queries: list[str]


class RelevanceRecord(BaseModel):
    """Does the query need the statement? Own queries are "yes"; cross pairs are labelled by the teacher."""

    character: str
    statement: str
    query: str
    relevant: Literal["yes", "no"]


class ThreeResponses(BaseModel):
    """Responses to a query that the statement entails, is neutral to, and contradicts."""

    entailed: str
    neutral: str
    contradicted: str


class NLIRecord(BaseModel):
    character: str
    statement: str
    query: str
    nli: ThreeResponses


class NLILabelRecord(BaseModel):
    """One (statement, query, response) triple with its relabelled NLI class: the NLI training item."""

    character: str
    statement: str
    query: str
    response: str
    label: NLILabel

    @field_validator("label", mode="before")
    @classmethod
    def _normalise(cls, value: object) -> object:
        # Teachers answer "Contradict", "contradiction", "Entailed." ...: keep the meaning, drop the noise.
        if isinstance(value, str):
            word = value.strip().strip(".\"'").lower()
            for label in NLI_LABELS:
                if word.startswith(label[:6]):
                    return label
        return value


class PreferenceRecord(BaseModel):
    """A DPO pair. `prompt` is the exact chat prompt (messages) or, as in the reference, rendered text."""

    prompt: str | list[Message]
    chosen: str
    rejected: str
    chosen_apc: float | None = None
    rejected_apc: float | None = None
    turns: int | None = None  # user turns in the prompt's conversation (multi-turn contexts have > 1)

    def to_trl(self) -> dict[str, object]:
        """A row for TRL's DPOTrainer: conversational when the prompt is messages, else standard text."""
        if isinstance(self.prompt, str):
            return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        return {
            "prompt": [m.model_dump() for m in self.prompt],
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
        }


_GEMMA_TURN = re.compile(r"<start_of_turn>(user|model)\n(.*?)<end_of_turn>\n?", re.DOTALL)
_OTHER_MARKUP = ("<|im_start|>", "<|start_header_id|>", "[INST]", "<|user|>", "<|assistant|>", "<start_of_turn>")


def gemma_messages(prompt: str) -> list[Message] | None:
    """A prompt rendered in Gemma's markup (APC's `.rag.dpo.json`) as messages, or None when it is not
    one. Gemma has no system role: APC puts the persona in a first model turn, read here as the system
    message; the open model turn at the end is the generation prompt."""
    if not prompt.startswith("<start_of_turn>"):
        return None
    turns = list(_GEMMA_TURN.finditer(prompt))
    rest = _GEMMA_TURN.sub("", prompt).strip()
    if not turns or rest not in ("", "<start_of_turn>model"):
        return None
    messages = [Message(role="user" if m[1] == "user" else "assistant", content=m[2]) for m in turns]
    if messages[0].role == "assistant":
        messages[0] = Message(role="system", content=messages[0].content)
    return messages


def student_neutral(rows: Sequence[PreferenceRecord], path: Path) -> tuple[list[PreferenceRecord], int]:
    """(pairs, how many were converted): pairs whose prompt is rendered in Gemma's markup (APC's released
    pairs, with a literal `<eos>` ending each reply) become messages and plain replies, so the student's
    own chat template renders them; a prompt in any other chat markup is refused, never trained on as is."""
    out, converted = [], 0
    for n, row in enumerate(rows):
        if isinstance(row.prompt, str) and (messages := gemma_messages(row.prompt)) is not None:
            reply = {k: getattr(row, k).removesuffix("<eos>").removesuffix("<end_of_turn>") for k in ("chosen", "rejected")}
            out.append(row.model_copy(update={"prompt": messages, **reply}))
            converted += 1
        elif isinstance(row.prompt, str) and any(mark in row.prompt for mark in _OTHER_MARKUP):
            raise RolecraftError(
                f"{path}: pair {n} has a prompt rendered in another model's chat markup",
                "give prompts as messages ([{role, content}]) or plain text, so the student's own template renders them",
            )
        else:
            out.append(row)
    return out, converted


def load_reference(path: str | Path, model: type[R]) -> list[R]:
    """Rows of a reference JSON list file (or a `.jsonl` file), validated as `model`."""
    path = Path(path)
    refuse_lfs_pointer(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RolecraftError(f"cannot read {path} ({e.strerror})", "check the path") from None
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" else json.loads(text)
    except json.JSONDecodeError as e:
        raise RolecraftError(f"{path} is not valid JSON ({e.msg}, line {e.lineno})", "fix or regenerate the file") from None
    if not isinstance(rows, list):
        raise RolecraftError(f"{path} holds a JSON {type(rows).__name__}, not a list of rows", "pass an APC data file")
    try:
        return [model.model_validate(row) for row in rows]
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RolecraftError(
            f"{path} does not look like {model.__name__} rows ({where}: {first['msg']})",
            f"pass a file with the fields {', '.join(model.model_fields)}",
        ) from None


def reference_files(folder: str | Path, character: str) -> dict[str, Path]:
    """The reference file for each stage of `character` in `folder` (only those that exist)."""
    folder = Path(folder)
    found = {stage: folder / f"{character}{suffix}.json" for stage, suffix in STAGES.items()}
    return {stage: path for stage, path in found.items() if path.exists()}


def statements_of(records: Sequence[StatementRecord]) -> list[str]:
    """Distinct statements in order."""
    return list(dict.fromkeys(r.statement for r in records))
