"""The OpenAI wire format the server speaks: request bodies in, error bodies out.

Requests are parsed by hand from the raw body (not by FastAPI's automatic validation) so each kind of
bad input gets the status the API promises: 400 for bodies that are not JSON or have missing or
mistyped fields, 422 for well-formed fields with invalid values (a negative max_tokens, a temperature
of 5). Types are strict (a string is never read as a number), as the OpenAPI description
(serve.openapi, generated from these models) says. Unknown fields — settings of other servers such as
typical_p or mirostat — are accepted and ignored, as front ends send them freely.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, WithJsonSchema, model_validator

from rolecraft.llm.base import Message, SamplingParams

# pydantic error types that mean "right type, wrong value".
_VALUE_ERRORS = {
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of", "finite_number",
    "too_short", "too_long", "string_too_short", "string_too_long", "string_pattern_mismatch", "literal_error",
    "enum", "value_error",
}  # fmt: skip


class APIError(Exception):
    """An error answered as an OpenAI-style body: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    @property
    def type(self) -> str:
        if self.status == 401:
            return "authentication_error"
        if self.status == 404 and self.param == "model":
            return "invalid_request_error"
        if self.status >= 500:
            return "server_error" if self.status != 503 else "overloaded_error"
        return "invalid_request_error"

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


MAX_CHOICES = 16  # `n`: choices in one request
StopString = Annotated[str, Field(max_length=256)]
TOKEN_ID = r"^(0|[1-9][0-9]{0,8})$"  # a token id, written as JSON writes numbers
# Token id (as a string) → bias. Spelled out: pydantic's own schema would let other keys through.
LogitBias = Annotated[
    dict[Annotated[str, StringConstraints(pattern=TOKEN_ID)], Annotated[float, Field(ge=-100.0, le=100.0)]],
    WithJsonSchema({"type": "object", "propertyNames": {"pattern": TOKEN_ID},
                    "additionalProperties": {"type": "number", "minimum": -100.0, "maximum": 100.0}}),
]  # fmt: skip


class _Body(BaseModel):
    # Strict: a JSON type other than the schema's is a 400, as the OpenAPI description says. Unknown
    # fields are allowed: front ends send other servers' settings freely.
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


class StreamOptions(_Body):
    include_usage: bool = False


class _Request(_Body):
    model: str
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    stop: StopString | Annotated[list[StopString], Field(max_length=64)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=MAX_CHOICES)  # choices, sampled with seeds seed, seed+1, ...
    # Samplers of local servers (vLLM, llama.cpp) and OpenAI's penalties; absent or neutral = off.
    top_k: int | None = Field(None, ge=-1)  # -1 or 0: off, as in vLLM
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(None, ge=0.01, le=10.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logit_bias: LogitBias | None = None

    def sampling(self, default_max_tokens: int, max_tokens_cap: int, seed: int) -> SamplingParams:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(
            max_tokens=min(self.max_completion_tokens or self.max_tokens or default_max_tokens, max_tokens_cap),
            temperature=0.7 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            seed=seed if self.seed is None else self.seed,
            stop=[s for s in stops if s],
            top_k=max(self.top_k or 0, 0),
            min_p=self.min_p or 0.0,
            repetition_penalty=self.repetition_penalty or 1.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            presence_penalty=self.presence_penalty or 0.0,
            logit_bias={int(k): v for k, v in (self.logit_bias or {}).items()},
            logprobs=self.logprob_count,
        )

    @property
    def logprob_count(self) -> int | None:
        return None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def as_message(self) -> Message:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        return Message(role="system" if self.role == "developer" else self.role, content=text)


class ChatRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)  # alternatives per token, with logprobs: true

    @property
    def logprob_count(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_Request):
    prompt: Annotated[str, Field(min_length=1)] | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    max_tokens: int | None = Field(16, ge=1)  # the OpenAI default for text completions
    logprobs: int | None = Field(None, ge=0, le=20)  # alternatives per token

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt

    @property
    def logprob_count(self) -> int | None:
        return self.logprobs


class TokenizeRequest(_Body):
    """vLLM's /tokenize: a raw `prompt`, or chat `messages` rendered with the model's chat template."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["prompt"], "properties": {"prompt": {"type": "string"}}},
        {"required": ["messages"], "properties": {"messages": {"type": "array"}}},
    ]})  # fmt: skip

    model: str | None = None  # absent: the first model served
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    add_special_tokens: bool | None = None  # default: true for a prompt, false for messages (as vLLM)
    return_token_strs: bool = False

    @model_validator(mode="after")
    def _one_input(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("send either prompt or messages")
        return self


class DetokenizeRequest(_Body):
    model: str | None = None
    tokens: list[Annotated[int, Field(ge=0)]]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _number(text: str) -> float | int:
    """JSON Schema counts 6.0 as an integer, so a number without a fraction is read as one."""
    value = float(text)
    return int(value) if value.is_integer() else value


def parse_body(raw: bytes, model: type[_Body]) -> Any:
    """A request model from raw bytes, or the APIError that explains what is wrong with them."""
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_float=_number)  # NaN and Infinity are Python's, not JSON
    except ValueError as e:
        raise APIError(400, f"the request body is not valid JSON ({e})") from None
    except RecursionError:
        raise APIError(400, "the request body nests too deeply") from None
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        # A field whose value had the right type in some form (a union member) has a value problem.
        fields_with_value_errors = {x["loc"][:1] for x in errors if x["type"] in _VALUE_ERRORS}
        first = next((x for x in errors if x["loc"][:1] not in fields_with_value_errors), errors[0])  # type errors first
        param = ".".join(str(p) for p in first["loc"]) or None
        status = 400 if first["loc"][:1] not in fields_with_value_errors else 422
        raise APIError(status, f"{param or 'body'}: {first['msg']}", param=param, code=first["type"]) from None
