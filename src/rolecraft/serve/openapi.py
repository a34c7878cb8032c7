"""The OpenAPI description of the server, served at /openapi.json (and fuzzed with schemathesis).

Request bodies are parsed by hand (serve.protocol) so that each bad input gets the status it is
promised; their schemas here are generated from those same pydantic models, and the answers' schemas
from serve.responses, through which every answer is built. So description and behaviour cannot drift
apart, and a route without a description fails at startup. What depends on the running server is
filled in: the model ids it serves and, when every model shares one tokenizer, its largest token id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route

from rolecraft.serve.protocol import ChatRequest, CompletionRequest, DetokenizeRequest, TokenizeRequest
from rolecraft.serve.responses import (
    ChatCompletion,
    Detokenized,
    ErrorBody,
    Health,
    ModelCard,
    ModelList,
    TextCompletion,
    Tokens,
)


class Operation(NamedTuple):
    summary: str
    request: type[BaseModel] | None
    answer: type[BaseModel]
    errors: tuple[int, ...]
    streams: bool = False  # `stream: true` answers with server-sent events


GENERATE = (400, 401, 404, 413, 422, 502, 503)
TOKENS = (400, 401, 404, 413, 422, 501)
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("get", "/health"): Operation("Liveness and requests in progress", None, Health, ()),
    ("get", "/v1/models"): Operation("The characters served, one model id each", None, ModelList, (401,)),
    ("get", "/v1/models/{model_id}"): Operation("One character", None, ModelCard, (401, 404)),
    ("post", "/v1/chat/completions"): Operation(
        "A reply in character (persona, retrieval and trimming added)", ChatRequest, ChatCompletion, GENERATE, True
    ),
    ("post", "/v1/completions"): Operation(
        "The raw prompt continued on the character's model", CompletionRequest, TextCompletion, GENERATE, True
    ),
    ("post", "/tokenize"): Operation("Token ids of a prompt or of chat messages (vLLM)", TokenizeRequest, Tokens, TOKENS),
    ("post", "/v1/tokenize"): Operation("Alias of /tokenize", TokenizeRequest, Tokens, TOKENS),
    ("post", "/detokenize"): Operation("Text of token ids (vLLM)", DetokenizeRequest, Detokenized, TOKENS),
    ("post", "/v1/detokenize"): Operation("Alias of /detokenize", DetokenizeRequest, Detokenized, TOKENS),
}
REASONS = {400: "Not JSON, or a field missing or of the wrong type", 401: "Missing or wrong API key",
           404: "No such model", 413: "Body over the size limit", 422: "A field with an invalid value",
           501: "The model is generated on another server, which has the tokenizer",
           502: "The upstream server failed", 503: "Busy: too many requests in progress (Retry-After)"}  # fmt: skip
# One server-sent event (OpenAPI before 3.2 describes each event): its data is a chunk as JSON,
# an error body, or [DONE] at the end.
EVENT = {"type": "object", "required": ["data"], "properties": {"event": {"const": "message"}, "data": {"type": "string"}}}
UNDESCRIBED = {"/", "/static", "/openapi.json"}


def openapi_document(routes: Sequence[BaseRoute], model_ids: Sequence[str], vocab_size: int | None, secured: bool) -> dict[str, Any]:
    """The description of `routes`; every API route must have an entry in OPERATIONS."""
    requests = {op.request for op in OPERATIONS.values() if op.request}
    answers = {op.answer for op in OPERATIONS.values()} | {ErrorBody}
    models = [(m, "validation") for m in requests] + [(m, "serialization") for m in answers]
    refs, schemas = models_json_schema(models, ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = schemas["$defs"]
    _fill_in(components, model_ids, vocab_size)

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return refs[(model, mode)]

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or route.path in UNDESCRIBED or not route.include_in_schema:
            continue
        path = route.path.replace(":path}", "}")
        for method in sorted(m.lower() for m in route.methods or () if m != "HEAD"):
            op = OPERATIONS.get((method, path))
            if op is None:
                raise RuntimeError(f"{method.upper()} {path} has no entry in rolecraft.serve.openapi.OPERATIONS")
            content = {"application/json": {"schema": ref(op.answer, "serialization")}}
            if op.streams:
                content["text/event-stream"] = {"schema": EVENT}
            operation: dict[str, Any] = {
                "summary": op.summary,
                "operationId": f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
                "responses": {"200": {"description": "OK", "content": content}} | {
                    str(code): {"description": REASONS[code], "content": {"application/json": {"schema": ref(ErrorBody, "serialization")}}}
                    for code in op.errors
                },
            }  # fmt: skip
            if op.request is not None:
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(op.request, "validation")}}}
            if "{model_id}" in path:
                operation["parameters"] = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}]
            if secured and 401 in op.errors:
                operation["security"] = [{"bearer": []}]
            paths.setdefault(path, {})[method] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "rolecraft", "version": "1", "description": "Characters served as OpenAI-compatible models."},
        "paths": paths,
        "components": {"schemas": components},
    }
    if secured:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return document


def _fill_in(components: dict[str, Any], model_ids: Sequence[str], vocab_size: int | None) -> None:
    """What only the running server knows: the model ids it serves and its token id range."""
    for name in ("ChatRequest", "CompletionRequest", "TokenizeRequest", "DetokenizeRequest"):
        prop = components[name]["properties"]["model"]
        served = {"type": "string", "enum": list(model_ids)}
        if "anyOf" in prop:  # optional: absent or null means the first model served
            prop["anyOf"] = [served if branch.get("type") == "string" else branch for branch in prop["anyOf"]]
        else:
            prop.update(served)
    if vocab_size is not None:
        components["DetokenizeRequest"]["properties"]["tokens"]["items"]["maximum"] = vocab_size - 1
        for name in ("ChatRequest", "CompletionRequest"):
            bias = next(b for b in components[name]["properties"]["logit_bias"]["anyOf"] if b.get("type") == "object")
            bias["propertyNames"] = {"pattern": _numbers_up_to(vocab_size - 1)}


def _numbers_up_to(top: int) -> str:
    """A pattern for the decimal numbers 0 ... top, without leading zeros."""
    digits = str(top)
    shorter = ["[0-9]"] + [f"[1-9][0-9]{{{n - 1}}}" for n in range(2, len(digits))] if len(digits) > 1 else []
    same = []
    for i, d in enumerate(digits):
        low = 1 if i == 0 and len(digits) > 1 else 0
        if int(d) > low:
            rest = len(digits) - i - 1
            same.append(digits[:i] + f"[{low}-{int(d) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    return "^(" + "|".join([*shorter, *same, digits]) + ")$"
