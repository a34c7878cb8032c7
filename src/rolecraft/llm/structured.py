"""Typed output from any model: ask with a JSON schema, parse tolerantly, count what fails.

Backends that can constrain decoding (hf: via outlines, openai: via `response_format`) receive the
schema and return valid JSON; anything else (a server that ignores the schema, a truncated answer)
goes through `parse_json`, which digs the first JSON value out of fenced or chatty text and forgives
trailing commas and smart quotes. A result that still does not validate is returned with its error,
never dropped silently — callers count rejections by reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from rolecraft.llm.base import ChatModel, Completion, Conversation, SamplingParams

T = TypeVar("T", bound=BaseModel)

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})


@dataclass
class Structured(Generic[T]):
    value: T | None
    completion: Completion
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None


def parse_json(text: str) -> Any:
    """The first JSON object or array in `text`, tolerating fences, prose around it, trailing commas."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        for start in (i for i, ch in enumerate(candidate) if ch in "{["):
            fragment = candidate[start:]
            for attempt in (fragment, _TRAILING_COMMA.sub(r"\1", fragment.translate(_SMART_QUOTES))):
                try:
                    value, _ = json.JSONDecoder().raw_decode(attempt)
                    return value
                except json.JSONDecodeError:
                    continue
    raise ValueError("no JSON value found in the output")


def parse_as(model: type[T], completion: Completion) -> Structured[T]:
    try:
        return Structured(model.model_validate(parse_json(completion.text)), completion)
    except ValueError as e:  # ValidationError is a ValueError too
        reason = "invalid_json" if not isinstance(e, ValidationError) else "schema_mismatch"
        if completion.finish_reason == "length":
            reason = "truncated"
        return Structured(None, completion, reason)


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


async def generate_structured(
    model: ChatModel,
    conversations: Sequence[Conversation],
    output: type[T],
    params: SamplingParams,
    **options: Any,
) -> list[Structured[T]]:
    """Typed answers, one per conversation. `options` go to the model's generate (e.g. a pool
    model's `progress=`)."""
    completions = await model.generate(conversations, params, schema=schema_of(output), **options)
    return [parse_as(output, c) for c in completions]


def max_json_length(model: type[BaseModel]) -> int:
    """An upper bound on the characters of a schema-constrained answer of `model` (every string
    character counted twice, for escapes like \\n; one optional space around each separator). A
    token is at least one character, so as `max_tokens` it never cuts an answer off — and costs
    nothing, since generation stops where the JSON closes. Strings and lists must be bounded."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def bound(node: dict) -> int:
        if "$ref" in node:
            return bound(defs[node["$ref"].rsplit("/", 1)[-1]])
        if "enum" in node or "const" in node:
            return max(len(json.dumps(v)) for v in node.get("enum", [node.get("const")]))
        kind = node.get("type")
        if kind == "string":
            return 2 * node["maxLength"] + 2
        if kind == "array":
            return 4 + node["maxItems"] * (bound(node["items"]) + 3)
        if kind == "object":
            return 4 + sum(len(key) + 8 + bound(prop) for key, prop in node["properties"].items())
        return 24  # numbers, booleans, null

    return bound(schema)


def token_limit(model: type[BaseModel], cap: int = 8192) -> int:
    """`max_tokens` for a constrained answer: the schema bound, capped so a server with a short
    context does not refuse the request outright."""
    return min(max_json_length(model) + 16, cap)
