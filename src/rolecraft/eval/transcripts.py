"""Character-LLM's published interview results, read as transcripts so they can be judged as they are.

    single-turn  data/gen_results/interview_single/<Character>_<model>_result/*.json
                 a JSON list of {topic_id, question, reply}; reply = [{role, action, content}] (chatgpt,
                 sft), one {role, action, content} object (alpaca-7b, vicuna-7b) or a string
    multi-turn   data/gen_results/interview_turns/multiturn_<Character>_<model>_result/*.jsonl
                 per line {character, model, topic, qid, max_turns, content: [{turn_id, turn_role
                 (interviewer | character), turn_content: [{role, action, content}]}]}

Every row becomes one transcript (rows in = rows out); a file that cannot be read is named, with the
reason, and the others are still read (`read_many`). Two readings, one per judging protocol:

- `rolecraft`: everything said aloud. A line of the interviewer ("Man") that a model wrote inside its
  own turn goes to the interviewer; a turn in which the character only thought is kept as
  "(says nothing)" and noted, never as a silently empty reply.
- `reference`: what Character-LLM's scorer reads. Single-turn: the first "(speaking)" item of the reply
  (the rubric then cuts it at its first blank line); multi-turn: the first item of every turn, when
  it is "(speaking)", and nothing else.

Multi-turn lines carry the goal text and its index `qid` in the multi-turn bank; with that bank the
goal's topic is recovered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from rolecraft.errors import RolecraftError
from rolecraft.eval.interview import SILENCE
from rolecraft.eval.records import INTERVIEWER, Question, Transcript
from rolecraft.formats.paper_files import refuse_lfs_pointer
from rolecraft.llm import Message

Protocol = Literal["rolecraft", "reference"]
SPEAKING = "(speaking)"
_RESULT_FOLDER = re.compile(r"^(?:multiturn_)?[^_]+_(.+?)_result$")


def agent_name(path: Path, character: str = "") -> str:
    """`Beethoven_sft_result/2023-….json` → "sft"; `Beethoven_sft.json` → "sft"; otherwise the stem."""
    match = _RESULT_FOLDER.match(path.parent.name)
    if match:
        return match.group(1)
    stem = path.stem.removeprefix("multiturn_")
    return stem.removeprefix(f"{character}_") if character and stem != character else stem


def items(reply: Any) -> list[dict[str, Any]]:
    """A reply's items as {role, action, content}: a list of them, one object, or plain text."""
    if isinstance(reply, str):
        return [{"action": SPEAKING, "content": reply}]
    if isinstance(reply, dict):
        reply = [reply]
    if not isinstance(reply, list) or not all(isinstance(i, dict) and "content" in i for i in reply):
        raise ValueError("reply is neither text, a {role, action, content} object nor a list of them")
    return reply


def is_thought(item: dict[str, Any]) -> bool:
    return "think" in str(item.get("action", "")).lower()


def spoken(reply: Any) -> str:
    """Everything said aloud in a reply, one line per item."""
    lines = [str(i["content"]).strip() for i in items(reply) if not is_thought(i)]
    return "\n".join(line for line in lines if line)


def first_spoken(reply: Any) -> str:
    """The reference scorer's reading, as written: a lone object's content, else the content of the first
    item whose action is exactly "(speaking)"."""
    if isinstance(reply, dict) and "content" in reply:
        return str(reply["content"])
    return next((str(i["content"]) for i in items(reply) if i.get("action") == SPEAKING), "")


def _topic(goal: str, qid: Any, bank: Sequence[Question]) -> Question:
    if isinstance(qid, int) and 0 <= qid < len(bank) and bank[qid].question.strip() == goal.strip():
        return bank[qid]
    return next((q for q in bank if q.question.strip() == goal.strip()), Question(question=goal))


def read_single(path: Path, agent: str, character: str, protocol: Protocol = "rolecraft") -> list[Transcript]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(rows, list):
        raise ValueError("expected a JSON list of {topic_id, question, reply}")
    read = first_spoken if protocol == "reference" else spoken
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "question" not in row:
            raise ValueError(f"row {i} has no question")
        question = Question(topic_id=str(row.get("topic_id", "")), question=str(row["question"]))
        reply = read(row.get("reply", ""))
        out.append(Transcript(
            id=f"single-{i:03d}", agent=agent, kind="single", character=character, question=question,
            turns=[Message(role="user", content=question.question), Message(role="assistant", content=reply)],
            notes=[] if reply.strip() else ["empty reply"],
        ))
    return out


def _append(turns: list[Message], role: str, content: str) -> None:
    if turns and turns[-1].role == role:  # an interviewer line moved out of a character turn joins the next one
        turns[-1] = Message(role=role, content=f"{turns[-1].content}\n{content}")
    else:
        turns.append(Message(role=role, content=content))


def _conversation(content: list[Any], name: str, protocol: Protocol) -> tuple[list[Message], list[str]]:
    """(messages, notes) of one multi-turn interview under `protocol`."""
    interviewer = {str(i.get("role")) for t in content if t.get("turn_role") == "interviewer"
                   for i in items(t.get("turn_content", []))} or {INTERVIEWER}
    turns: list[Message] = []
    notes: list[str] = []
    for n, turn in enumerate(content):
        said = items(turn["turn_content"])
        by_interviewer = turn.get("turn_role") == "interviewer"
        if protocol == "reference":
            first = said[0] if said else {}
            if first.get("action") == SPEAKING:
                turns.append(Message(role="user" if first.get("role") in interviewer else "assistant",
                                     content=str(first["content"])))
            elif not by_interviewer:
                notes.append(f"turn {n}: the first item is not speech, so the reference scorer leaves the turn out")
            continue
        lines = [(str(i.get("role")) in interviewer or by_interviewer, str(i["content"]).strip())
                 for i in said if not is_thought(i)]
        if not by_interviewer and not any(text for asked, text in lines if not asked):
            lines.insert(0, (False, SILENCE))
            notes.append(f"turn {n}: {name} only thought, said nothing")
        if not by_interviewer and any(asked for asked, _ in lines):
            notes.append(f"turn {n}: an interviewer line written inside {name}'s turn went to the interviewer")
        for asked, text in lines:
            if text:
                _append(turns, "user" if asked else "assistant", text)
    return turns, notes


def read_multi(path: Path, agent: str, character: str, bank: Sequence[Question],
               protocol: Protocol = "rolecraft", name: str = "") -> list[Transcript]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            turns, notes = _conversation(row["content"], name or character, protocol)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"line {number}: {type(e).__name__}: {e}") from None
        qid = row.get("qid")
        if not row.get("finished", True):
            notes.append("the interview did not finish")
        out.append(Transcript(
            id=f"multi-{qid if isinstance(qid, int) else number:03d}", agent=agent, kind="multi",
            character=str(row.get("character", character)), question=_topic(str(row.get("topic", "")), qid, bank),
            turns=turns, notes=notes,
        ))
    return out


def read_transcripts(path: str | Path, character: str, agent: str | None = None, bank: Sequence[Question] = (),
                     protocol: Protocol = "rolecraft", name: str = "") -> list[Transcript]:
    """A result file as transcripts: `.json` single-turn, `.jsonl` multi-turn. `character` is the full
    name, `name` the short one the transcripts call the character (default: the full name)."""
    path = Path(path)
    if not path.is_file():
        raise RolecraftError(f"{path}: no such file", "pass a Character-LLM interview result (.json or .jsonl)")
    refuse_lfs_pointer(path)
    who = agent or agent_name(path, name)
    try:
        if path.suffix.lower() == ".jsonl":
            return read_multi(path, who, character, bank, protocol, name)
        return read_single(path, who, character, protocol)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, UnicodeDecodeError) as e:
        raise RolecraftError(
            f"{path} is not a Character-LLM interview result ({type(e).__name__}: {e})",
            "single-turn: a JSON list of {topic_id, question, reply}; multi-turn: JSONL with `content` turns",
        ) from None


def read_many(paths: Sequence[str | Path], character: str, agent: str | None = None, bank: Sequence[Question] = (),
              protocol: Protocol = "rolecraft", name: str = "") -> tuple[list[Transcript], list[str]]:
    """(transcripts of every readable file, one line per unreadable file): one bad file stops nothing."""
    found: list[Transcript] = []
    unreadable: list[str] = []
    for path in paths:
        try:
            found += read_transcripts(path, character, agent, bank, protocol, name)
        except RolecraftError as e:
            unreadable.append(str(e))
    return found, unreadable
