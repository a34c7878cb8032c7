"""Judges: named rubrics, each a prompt, a parser for the judge's answer, and an aggregation over samples.

    character-llm      memorization, values, personality, hallucination (+ stability for multi-turn), 1–7
    ditto-consistency  which of 4 candidate roles gave this reply? share of samples naming the right one
                       (naming someone who is not a candidate counts as a wrong pick, as in Ditto)
    ditto-knowledge    correctness against evidence bullets, 1–10
    ditto-rejection    did the role refuse? majority over samples (a tie takes the first vote, as Ditto's
                       script does), scored against the label (accuracy)

Ditto's rubrics ask in English or, for the Chinese half of WikiRoleEval (`Case.lang == "zh"`), in
Chinese. Character-LLM's and Ditto's own prompts, parsers and settings are the `reference` protocols
(eval/charllm_reference.py, eval/ditto_reference.py).

The judge answers in JSON under a schema (reasoning first, then the verdict), so a backend that
constrains decoding always gives a readable answer; `read` also understands free text ("Score: 5",
a bare number on the last line, "the most suitable role is [X]", "1"), for servers that ignore the
schema and for transcripts judged elsewhere. Answers that still cannot be read are counted in
`Judgement.parse_failures` and never stop a run.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from functools import lru_cache
from statistics import mean
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from rolecraft.eval.cost import Cost
from rolecraft.eval.records import INTERVIEWER, LOCATION, Judgement, Kind, status
from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.batching import Batched
from rolecraft.llm.structured import parse_json, schema_of
from rolecraft.progress import progress


class Case(BaseModel):
    """One thing to judge: a dialogue where user turns are the other speaker, assistant turns the role."""

    agent: str
    item: str
    kind: Kind
    topic_id: str = ""
    probe: bool = False
    name: str  # the role's name
    profile: str = ""  # what the judge knows about the role
    dialogue: list[Message]
    candidates: list[str] = Field(default_factory=list)
    evidence: str = ""
    label: int | None = None  # rejection: 1 = the role should refuse
    lang: str = "en"  # the language Ditto's rubrics ask in ("zh" for WikiRoleEval's Chinese items)

    def text(self, other: str = INTERVIEWER) -> str:
        return "\n".join(f"{self.name if m.role == 'assistant' else other}: {m.content}" for m in self.dialogue)

    def question(self) -> str:
        return next((m.content for m in self.dialogue if m.role == "user"), "")

    def answer(self) -> str:
        return next((m.content for m in reversed(self.dialogue) if m.role == "assistant"), "")


# -- reading the judge's answer ----------------------------------------------------------------------

_SCORE_WORD = re.compile(r"score\D{0,20}?(\d+(?:\.\d+)?)", re.IGNORECASE)
_LONE_NUMBER = re.compile(r"^\W*(\d+(?:\.\d+)?)\s*(?:/\s*\d+)?\W*$")
_ROLE_PHRASE = re.compile(
    r"(?:(?:suitable|likely|best)\s+(?:role|identity|candidate)\s+is\s*:?|最符合的角色(?:为|是)\s*[:：]?)\s*\[?([^\]\n]+)", re.I
)


def _fields(text: str) -> dict[str, Any]:
    try:
        value = parse_json(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def read_score(text: str, low: float, high: float) -> float | None:
    """A score in [low, high]: from JSON `score`, else the last number on its own line or after 'score'."""
    data = _fields(text)
    candidates: list[str] = [str(data["score"])] if "score" in data else []
    lines = [line for line in text.strip().splitlines() if line.strip()]
    candidates += [m.group(1) for line in reversed(lines) if (m := _LONE_NUMBER.match(line))][:1]
    candidates += [m.group(1) for m in reversed(list(_SCORE_WORD.finditer(text)))][:1]
    for raw in candidates:
        try:
            value = float(raw)
        except ValueError:
            continue
        if low <= value <= high:
            return value
    return None


def _norm(name: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", name.casefold()).split())


def read_role(text: str, candidates: Sequence[str]) -> str | None:
    """The candidate the judge picked: JSON `role`, or 'the most suitable role is [X]'; failing both, the
    only candidate the text names. A judge that names someone who is not a candidate gets that name back
    (a wrong pick, not an unreadable answer)."""
    data = _fields(text)
    said = [str(data["role"])] if "role" in data else []
    said += [m.group(1) for m in _ROLE_PHRASE.finditer(text)][-1:]
    by_norm = {_norm(c): c for c in candidates}
    for phrase in said:
        if _norm(phrase) in by_norm:
            return by_norm[_norm(phrase)]
        inside = [c for n, c in by_norm.items() if n and re.search(rf"\b{re.escape(n)}\b", _norm(phrase))]
        if len(inside) == 1:
            return inside[0]
    if said:  # the judge named someone who is not a candidate
        return said[0].strip()
    named = [c for n, c in by_norm.items() if n and re.search(rf"\b{re.escape(n)}\b", _norm(text))]
    return named[0] if len(named) == 1 else None


_YES = {"1", "yes", "true", "refused", "refuses", "是"}
_NO = {"0", "no", "false", "answered", "answers", "否"}


def read_refusal(text: str) -> float | None:
    """1.0 if the judge says the role refused, 0.0 if it answered: JSON `refused`, else a bare 1/0/yes/no."""
    data = _fields(text)
    if isinstance(data.get("refused"), (bool, int)) and data["refused"] in (0, 1):
        return float(data["refused"])
    for line in reversed([line for line in text.strip().lower().splitlines() if line.strip()]):
        word = re.sub(r"[^\w]", "", line.split(":")[-1])
        if word in _YES or word in _NO:
            return 1.0 if word in _YES else 0.0
    return None


def reasoning_of(text: str) -> str:
    data = _fields(text)
    return str(data.get("reasoning") or text).strip()


# -- rubrics ---------------------------------------------------------------------------------------

_ANSWER = "Reason step by step first; do not state the verdict at the outset. Answer as JSON: {}"


@lru_cache(maxsize=None)
def verdict_schema(verdict: str, reasoning_chars: int) -> type[BaseModel]:
    """The judge's answer: reasoning bounded to fit the token budget, then the verdict."""
    kinds: dict[str, Any] = {
        "score7": (Literal[1, 2, 3, 4, 5, 6, 7], ...),
        "score10": (Literal[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], ...),
        "role": (str, Field(max_length=120)),
        "refused": (bool, ...),
    }
    field = "score" if verdict.startswith("score") else verdict
    return create_model(
        f"Verdict_{verdict}", reasoning=(str, Field(max_length=reasoning_chars)), **{field: kinds[verdict]}
    )


class Rubric:
    name = ""
    scale: tuple[float, float] = (0.0, 1.0)
    verdict = ""  # which verdict_schema the judge answers in; "" = free text, no schema
    max_tokens: int | None = None  # the rubric's own answer budget (None: the run's)

    def dimensions(self, kind: Kind) -> list[str]:
        return [self.name]

    def prompt(self, case: Case, dimension: str) -> str:
        raise NotImplementedError

    def messages(self, case: Case, dimension: str) -> list[Message]:
        return [Message(role="user", content=self.prompt(case, dimension))]

    def read(self, text: str, case: Case) -> float | None:
        return read_score(text, *self.scale)

    def combine(self, values: list[float], case: Case) -> tuple[float | None, float | None]:
        """(verdict, score) from the samples that parsed (none: no score); by default both are their mean."""
        return (mean(values), mean(values)) if values else (None, None)


def majority(values: Sequence[float]) -> float:
    """The most frequent value; a tie goes to the value voted first (Counter.most_common's order, which
    is what Ditto's script takes)."""
    top = max(values.count(v) for v in values)
    return next(v for v in values if values.count(v) == top)


CRITERIA = {
    "memorization": (
        "Memorization",
        "Does the reply recall the character's life, people and experiences correctly and in detail?",
        "Find every claim the reply makes about the character's life; compare each with the profile and "
        "facts; reward correct, specific recollection, penalise wrong or vague answers.",
    ),
    "values": (
        "Values",
        "Do the goals, beliefs, preferences and judgements in the reply match the character's?",
        "Work out the character's values from the profile; find the values the reply expresses; compare them.",
    ),
    "personality": (
        "Personality",
        "Do the tone, manner, vocabulary and emotional reactions match the character's personality?",
        "Work out the character's personality from the profile; judge whether the reply sounds like them.",
    ),
    "hallucination": (
        "Avoiding hallucination",
        "Does the reply avoid knowledge the character cannot have (later eras, other worlds, modern "
        "technology) and avoid inventing facts that contradict the profile?",
        "Identify the character's knowledge scope; find the knowledge the reply uses; a reply that explains "
        "things outside that scope, instead of showing ignorance in character, gets a low score.",
    ),
    "stability": (
        "Stability",
        "Does the assistant stay in character, consistently, over the whole long conversation?",
        "Judge each reply for whether it reflects the character's personality and values; then judge whether "
        "that holds from the first turn to the last.",
    ),
}


class CharacterLLM(Rubric):
    name = "character-llm"
    scale = (1.0, 7.0)
    verdict = "score7"

    def dimensions(self, kind: Kind) -> list[str]:
        dims = ["memorization", "values", "personality", "hallucination"]
        return dims + ["stability"] if kind == "multi" else dims

    def prompt(self, case: Case, dimension: str) -> str:
        title, question, steps = CRITERIA[dimension]
        return (
            f"You will rate how well an AI assistant plays the character {case.name}, on one criterion only.\n\n"
            f"[Profile of {case.name}]\n{case.profile}\n\n"
            f"[Scene]\nLocation: {LOCATION}\nStatus: {status(case.name)}\n\n"
            f"[Interactions]\n{case.text()}\n\n"
            f"[Criterion]\n{title} (1-7): {question}\n\n[How to judge]\n{steps}\n\n"
            + _ANSWER.format('{"reasoning": "...", "score": 1-7}')
        )


_ANSWER_ZH = "请先逐步推理，不要一开始就给出结论。以 JSON 回答：{}"
_DITTO = {  # rolecraft's wording of Ditto's three questions, in English and Chinese
    "consistency": {
        "en": ("Here is one exchange between a user and a character. From the reply alone, decide which of the "
               "candidate identities the character is.\n\n[Question]\n{question}\n\n[Reply]\n{answer}\n\n"
               "[Candidates]\n{options}\n\nConsider what the reply reveals (knowledge, style, relationships), "
               "then name the single best candidate exactly as written. "),
        "zh": ("下面是用户与一个角色之间的一轮对话。请仅根据角色的回复，判断该角色是下列候选身份中的哪一个。\n\n"
               "[问题]\n{question}\n\n[回复]\n{answer}\n\n[候选身份]\n{options}\n\n"
               "请考虑回复所透露的信息（知识、说话风格、人际关系），然后按原样写出最合适的那一个候选身份。"),
    },
    "knowledge": {
        "en": ("An AI assistant plays {name}. About {name}: {profile}\n\nJudge impartially how correct and "
               "knowledgeable the reply is, using the evidence as a reference.\n\n[Question]\n{question}\n\n"
               "[Reply]\n{answer}\n\n[Evidence]\n{evidence}\n\nScore 1 (wrong, empty or off-topic) to 10 "
               "(correct, specific and consistent with the evidence). "),
        "zh": ("一个人工智能助手正在扮演{name}。关于{name}：{profile}\n\n请以下面的证据为参考，公正地评判回复是否正确、"
               "是否体现了角色应有的知识。\n\n[问题]\n{question}\n\n[回复]\n{answer}\n\n[证据]\n{evidence}\n\n"
               "评分从 1（错误、空洞或答非所问）到 10（正确、具体且与证据一致）。"),
    },
    "rejection": {
        "en": ("Here is an exchange between a user and {name}.\n\n[Question]\n{question}\n\n[Reply]\n{answer}\n\n"
               "Did {name} decline to answer — say they do not know, cannot know, or will not answer, or show "
               "confusion about the subject — instead of answering it? "),
        "zh": ("下面是用户与{name}之间的一轮对话。\n\n[问题]\n{question}\n\n[回复]\n{answer}\n\n"
               "{name}是否拒绝回答了这个问题——说自己不知道、不可能知道或不愿回答，或对该话题表现出困惑——"
               "而不是给出了回答？"),
    },
}


def ditto_prompt(which: str, case: Case, verdict: str) -> str:
    lang = "zh" if case.lang == "zh" else "en"
    text = _DITTO[which][lang].format(
        name=case.name, profile=case.profile, question=case.question(), answer=case.answer(),
        evidence=case.evidence or "-", options="\n".join(f"- {c}" for c in case.candidates),
    )
    return text + (_ANSWER_ZH if lang == "zh" else _ANSWER).format(verdict)


class Consistency(Rubric):
    name = "ditto-consistency"
    verdict = "role"

    def prompt(self, case: Case, dimension: str) -> str:
        return ditto_prompt("consistency", case, '{"reasoning": "...", "role": "<candidate>"}')

    def read(self, text: str, case: Case) -> float | None:
        picked = read_role(text, case.candidates)
        return None if picked is None else float(_norm(picked) == _norm(case.name))


class Knowledge(Rubric):
    name = "ditto-knowledge"
    scale = (1.0, 10.0)
    verdict = "score10"

    def prompt(self, case: Case, dimension: str) -> str:
        return ditto_prompt("knowledge", case, '{"reasoning": "...", "score": 1-10}')


class Rejection(Rubric):
    name = "ditto-rejection"
    verdict = "refused"

    def prompt(self, case: Case, dimension: str) -> str:
        return ditto_prompt("rejection", case, '{"reasoning": "...", "refused": true or false}')

    def read(self, text: str, case: Case) -> float | None:
        return read_refusal(text)

    def combine(self, values: list[float], case: Case) -> tuple[float | None, float | None]:
        if not values:
            return None, None
        refused = majority(values)
        return refused, refused if case.label is None else float(refused == case.label)


RUBRICS: dict[str, Rubric] = {r.name: r for r in (CharacterLLM(), Consistency(), Knowledge(), Rejection())}


# -- running a judge ---------------------------------------------------------------------------------


def judgement(case: Case, rubric: Rubric, dimension: str, texts: Sequence[str]) -> Judgement:
    """Parse every sample and aggregate; unreadable samples become None and are counted."""
    values = [rubric.read(t, case) for t in texts]
    good = [v for v in values if v is not None]
    verdict, score = rubric.combine(good, case)
    first = next((t for t, v in zip(texts, values) if v is not None), texts[0] if texts else "")
    return Judgement(
        agent=case.agent, item=case.item, kind=case.kind, topic_id=case.topic_id, probe=case.probe,
        rubric=rubric.name, dimension=dimension, scale=rubric.scale, score=score, verdict=verdict,
        label=case.label, samples=values, parse_failures=len(values) - len(good), reasoning=reasoning_of(first),
    )


def reasoning_chars(max_tokens: int) -> int:
    # ~3 characters per token leaves room for the JSON around the reasoning and the verdict.
    return max(40, 3 * (max_tokens - 24))


async def run_judges(
    model: Batched, jobs: Sequence[tuple[Case, Rubric, str]], samples: int = 1,
    max_tokens: int = 384, temperature: float = 0.7, description: str = "judging", cost: Cost | None = None,
) -> list[Judgement]:
    """Judge every (case, rubric, dimension), `samples` times each, batched by schema and sample seed.

    One sample is decoded greedily; several are sampled at `temperature` with seeds 0..n-1, so each
    sample is a separate cached request and a resumed run reuses them. A rubric with its own
    `max_tokens` (the reference protocols) answers within that budget instead of `max_tokens`.
    """
    texts: list[list[str]] = [[""] * samples for _ in jobs]
    groups: dict[tuple[str, int], list[int]] = {}
    for i, (_, rubric, _) in enumerate(jobs):
        groups.setdefault((rubric.verdict, rubric.max_tokens or max_tokens), []).append(i)

    async def ask(verdict: str, budget: int, idx: list[int], seed: int, advance) -> None:
        params = SamplingParams(max_tokens=budget, temperature=temperature if samples > 1 else 0.0, seed=seed)
        convs = [jobs[i][1].messages(jobs[i][0], jobs[i][2]) for i in idx]
        schema = schema_of(verdict_schema(verdict, reasoning_chars(budget))) if verdict else None
        for i, completion in zip(idx, await model.generate(convs, params, schema, progress=advance)):
            texts[i][seed] = completion.text
            if cost:
                cost.add("judge", completion)

    with progress(len(jobs) * samples, description) as advance:
        await asyncio.gather(*(ask(v, b, idx, s, advance) for (v, b), idx in groups.items() for s in range(samples)))
    return [judgement(case, rubric, dim, texts[i]) for i, (case, rubric, dim) in enumerate(jobs)]
